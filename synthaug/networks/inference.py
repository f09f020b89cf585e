"""Inference-time helpers for the frozen generators: a faster copy of a network and the precision it runs in.

The networks in :mod:`synthaug.networks` stay plain modules (what training builds and exports). For inference,
:func:`inference_copy` derives a copy that computes the same function faster on CPU and GPU, and :func:`infer`
runs one of its methods under :func:`torch.inference_mode` in the precision chosen with :func:`precision`:

- **transposed convolutions with few output channels** (kernel 4, stride 2, padding 1: the last layer of the
  pix2pix U-Nets and ResGAN) become a stride-1 convolution with ``2**dims`` times the output channels followed by
  a pixel shuffle (the sub-pixel form of the same operator): a transposed convolution with 1 output channel
  ran at ~10% of the matmul peak on CPU, its sub-pixel form ~2x faster (measured, see
  benchmarks/results/speed.md);
- **SPADE blocks** resize their conditioning map once per block instead of once per SPADE layer, and the
  layers that read the same map are fused: the three ``shared`` embeddings of a residual block are one
  convolution with three times the width, and each SPADE's ``gamma`` and ``beta`` are one convolution with
  twice the width (wider convolutions keep the vector units busier; the sums are the same, in another order);
- **channels-last memory format** where it was measured to help (2D SPADE decoders on CPU), so no layout
  reorder runs between layers.

Every rewrite is exact in real arithmetic; in float32 the outputs differ from the plain module's by summation
order only (tests/networks/test_inference.py bounds it). Reduced precision is opt-in and process-wide or
per call, never a transform option:

>>> import torch
>>> from synthaug.networks.inference import precision, current_precision
>>> with precision("bf16"):
...     current_precision()
'bf16'
>>> current_precision()
'fp32'

``bf16`` uses autocast on CPU and CUDA, ``fp16`` autocast on CUDA only; outputs are returned in float32. The
quality change of bf16 against fp32 for every shipped generator (PSNR/SSIM) is measured by
``synthaug benchmark speed`` (benchmarks/results/speed.md).
"""

from __future__ import annotations

import contextlib
import copy
import threading
import weakref
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from synthaug._validate import check_choice
from synthaug.errors import ValidationError

__all__ = [
    "PRECISIONS",
    "InferenceSettings",
    "SubPixelConvTranspose",
    "configure",
    "current_precision",
    "current_settings",
    "infer",
    "inference_copy",
    "precision",
    "set_precision",
]

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
_AUTOCAST_DTYPE = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class InferenceSettings:
    """Process-wide inference settings (change them with :func:`configure`).

    Attributes:
        optimise: run the faster copy (:func:`inference_copy`); False runs the plain module (the reference).
        channels_last: store 2D networks and their inputs channels-last in the copy: True, False, or None (the
            measured rule: on CPU only for SPADE decoders, where it saved ~7-13% of the forward time, while the
            pix2pix U-Nets and the ResNet translators ran as fast or slower channels-last; off on other devices
            until measured there: pass True to try it).
        subpixel_max_channels: rewrite transposed convolutions with at most this many output channels in the
            sub-pixel form (0: never). Wider ones stay: oneDNN's own kernel was faster there (measured).
    """

    optimise: bool = True
    channels_last: bool | None = None
    subpixel_max_channels: int = 4


_SETTINGS = InferenceSettings()
_DEFAULT_PRECISION = "fp32"
_PRECISION: ContextVar[str | None] = ContextVar("synthaug_precision", default=None)
_LOCK = threading.Lock()
_COPIES: weakref.WeakKeyDictionary[nn.Module, dict[InferenceSettings, nn.Module]] = weakref.WeakKeyDictionary()


def current_settings() -> InferenceSettings:
    """The process-wide :class:`InferenceSettings`."""
    return _SETTINGS


@contextlib.contextmanager
def configure(**changes: Any) -> Iterator[InferenceSettings]:
    """Change the process-wide :class:`InferenceSettings` inside a ``with`` block (e.g. ``optimise=False`` for the
    reference path); the previous settings come back on exit."""
    global _SETTINGS
    unknown = set(changes) - set(InferenceSettings.__dataclass_fields__)
    if unknown:
        raise ValidationError(
            f"unknown inference setting(s) {sorted(unknown)}; the settings are {sorted(InferenceSettings.__dataclass_fields__)}."
        )
    old = _SETTINGS
    _SETTINGS = InferenceSettings(**{**old.__dict__, **changes})
    try:
        yield _SETTINGS
    finally:
        _SETTINGS = old


def _check_precision(mode: str) -> str:
    return check_choice("precision", mode, PRECISIONS)


def set_precision(mode: str) -> None:
    """Process-wide default precision of :func:`infer`: ``"fp32"`` (default), ``"bf16"`` or ``"fp16"`` (CUDA)."""
    global _DEFAULT_PRECISION
    _DEFAULT_PRECISION = _check_precision(mode)


def current_precision() -> str:
    """The precision :func:`infer` uses now (the innermost :func:`precision` block, else the process default)."""
    mode = _PRECISION.get()
    return _DEFAULT_PRECISION if mode is None else mode


@contextlib.contextmanager
def precision(mode: str) -> Iterator[str]:
    """Run generator inference inside the block in ``mode`` (``"fp32"``, ``"bf16"``, ``"fp16"``)."""
    token = _PRECISION.set(_check_precision(mode))
    try:
        yield mode
    finally:
        _PRECISION.reset(token)


def _autocast(device: torch.device, mode: str) -> contextlib.AbstractContextManager[Any]:
    if mode == "fp32":
        return contextlib.nullcontext()
    if mode == "fp16" and device.type == "cpu":
        raise ValidationError(
            "precision 'fp16' needs a CUDA device (CPU convolutions have no fast fp16 path); use 'bf16' on CPU."
        )
    if device.type not in ("cpu", "cuda"):
        raise ValidationError(f"reduced precision {mode!r} is supported on cpu and cuda, not {device.type!r}; use 'fp32'.")
    return torch.autocast(device_type=device.type, dtype=_AUTOCAST_DTYPE[mode])


# ------------------------------------------------------------------------------------------ rewrites


def _subpixel_weight(weight: torch.Tensor, dims: int) -> torch.Tensor:
    """Kernel-4 / stride-2 / padding-1 transposed-convolution weight ``(C_in, C_out, 4, ...)`` as the weight of a
    kernel-3 / padding-1 convolution ``(C_out * 2**dims, C_in, 3, ...)`` whose pixel shuffle is the same output.

    Output ``y[2 i + a] = sum_m x[m] w[k]`` with ``2 m - 1 + k = 2 i + a``; with the convolution tap
    ``d = m - i + 1`` (0..2) this is ``k = 2 (1 - d) + a + 1``, valid where ``0 <= k < 4``.
    """
    cin, cout = weight.shape[:2]
    taps = torch.zeros(2, 3, 4, dtype=weight.dtype, device=weight.device)  # (phase a, tap d, kernel k)
    for a in range(2):
        for d in range(3):
            k = 2 * (1 - d) + a + 1
            if 0 <= k < 4:
                taps[a, d, k] = 1.0
    # w (cin, cout, k...) -> (cout, phase a..., cin, tap d...)
    if dims == 2:
        out = torch.einsum("ioKL,aeK,bfL->oabief", weight, taps, taps)
    else:
        out = torch.einsum("ioKLM,aeK,bfL,cgM->oabciefg", weight, taps, taps, taps)
    return out.reshape(cout * 2**dims, cin, *([3] * dims)).contiguous()


def _pixel_shuffle(x: torch.Tensor, dims: int) -> torch.Tensor:
    """``(B, C * 2**dims, *S)`` -> ``(B, C, *(2 S))``, phase-major as :func:`_subpixel_weight` orders it."""
    if dims == 2:
        return F.pixel_shuffle(x, 2)
    b, c8, d, h, w = x.shape
    c = c8 // 8
    y = x.reshape(b, c, 2, 2, 2, d, h, w).permute(0, 1, 5, 2, 6, 3, 7, 4)
    return y.reshape(b, c, 2 * d, 2 * h, 2 * w)


class SubPixelConvTranspose(nn.Module):
    """A kernel-4, stride-2, padding-1 transposed convolution computed as convolution + pixel shuffle."""

    def __init__(self, source: nn.ConvTranspose2d | nn.ConvTranspose3d) -> None:
        super().__init__()
        self.dims = 3 if isinstance(source, nn.ConvTranspose3d) else 2
        self.out_channels = source.out_channels
        weight = _subpixel_weight(source.weight.detach(), self.dims)
        self.weight = nn.Parameter(weight, requires_grad=False)
        bias = None if source.bias is None else source.bias.detach().repeat_interleave(2**self.dims)
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)

    @staticmethod
    def applies(module: nn.Module, max_channels: int) -> bool:
        """Whether ``module`` is a transposed convolution this rewrite reproduces."""
        if not isinstance(module, (nn.ConvTranspose2d, nn.ConvTranspose3d)):
            return False
        dims = 3 if isinstance(module, nn.ConvTranspose3d) else 2
        return (module.out_channels <= max_channels and module.groups == 1
                and tuple(module.kernel_size) == (4,) * dims and tuple(module.stride) == (2,) * dims
                and tuple(module.padding) == (1,) * dims and tuple(module.dilation) == (1,) * dims
                and tuple(module.output_padding) == (0,) * dims and module.padding_mode == "zeros")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = F.conv3d if self.dims == 3 else F.conv2d
        weight = self.weight.to(x.dtype) if not torch.is_autocast_enabled() else self.weight
        bias = self.bias
        if bias is not None and not torch.is_autocast_enabled():
            bias = bias.to(x.dtype)
        return _pixel_shuffle(conv(x, weight, bias, padding=1), self.dims)


class _FusedSPADEResBlock(nn.Module):
    """A :class:`~synthaug.networks.spade.SPADEResBlock` with the conditioning resized once and the SPADE
    embeddings fused (same function; see the module docstring)."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        spades = [block.norm_0, block.norm_1] + ([block.norm_s] if block.norm_s is not None else [])
        self.n = len(spades)
        self.norms = nn.ModuleList([s.norm for s in spades])
        self.hidden = spades[0].shared[0].out_channels
        shared = [s.shared[0] for s in spades]
        self.shared = _cat_conv(shared)
        self.modulation = nn.ModuleList([_cat_conv([s.gamma, s.beta]) for s in spades])
        self.widths = [s.norm_channels for s in spades]
        self.conv_0, self.conv_1, self.act = block.conv_0, block.conv_1, block.act
        self.conv_s = block.conv_s

    def _spade(self, i: int, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        gb = self.modulation[i](h[:, i * self.hidden : (i + 1) * self.hidden])
        gamma, beta = gb[:, : self.widths[i]], gb[:, self.widths[i] :]
        return self.norms[i](x) * (1.0 + gamma) + beta

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if cond.shape[2:] != x.shape[2:]:
            cond = F.interpolate(cond, size=x.shape[2:], mode="nearest")
        h = F.relu(self.shared(cond))
        shortcut = self.conv_s(self._spade(2, x, h)) if self.conv_s is not None else x
        y = self.conv_0(self.act(self._spade(0, x, h)))
        y = self.conv_1(self.act(self._spade(1, y, h)))
        return shortcut + y


def _cat_conv(convs: list[nn.Module]) -> nn.Module:
    """One convolution whose output channels are the concatenation of ``convs`` (same input, same geometry)."""
    first = convs[0]
    fused = type(first)(first.in_channels, sum(c.out_channels for c in convs), kernel_size=first.kernel_size,
                        stride=first.stride, padding=first.padding, dilation=first.dilation,
                        bias=first.bias is not None, padding_mode=first.padding_mode)
    fused = fused.to(device=first.weight.device, dtype=first.weight.dtype)
    with torch.no_grad():
        fused.weight.copy_(torch.cat([c.weight for c in convs]))
        if first.bias is not None:
            fused.bias.copy_(torch.cat([c.bias for c in convs]))
    return fused.requires_grad_(False)


def _rewrite(module: nn.Module, settings: InferenceSettings) -> nn.Module:
    from synthaug.networks.spade import SPADEResBlock

    if isinstance(module, SPADEResBlock) and _fusable_spade_block(module):
        return _FusedSPADEResBlock(module)
    if settings.subpixel_max_channels and SubPixelConvTranspose.applies(module, settings.subpixel_max_channels):
        return SubPixelConvTranspose(module)
    for name, child in module.named_children():
        new = _rewrite(child, settings)
        if new is not child:
            setattr(module, name, new)
    return module


def _fusable_spade_block(block: nn.Module) -> bool:
    spades = [block.norm_0, block.norm_1] + ([block.norm_s] if block.norm_s is not None else [])
    first = spades[0].shared[0]
    return all(
        type(s.shared[0]) is type(first) and s.shared[0].in_channels == first.in_channels
        and s.shared[0].out_channels == first.out_channels and s.shared[0].kernel_size == first.kernel_size
        and s.shared[0].padding == first.padding and isinstance(s.shared[1], nn.ReLU)
        for s in spades
    )


def _is_2d(net: nn.Module) -> bool:
    kinds = {type(m) for m in net.modules()}
    return bool(kinds & {nn.Conv2d, nn.ConvTranspose2d}) and not kinds & {nn.Conv3d, nn.ConvTranspose3d}


def _use_channels_last(net: nn.Module, setting: bool | None) -> bool:
    if not _is_2d(net) or setting is False:
        return False
    if setting:
        return True
    p = next(net.parameters(), None)
    if p is not None and p.device.type != "cpu":
        return False
    return any(isinstance(m, _FusedSPADEResBlock) for m in net.modules())


def inference_copy(net: nn.Module, settings: InferenceSettings | None = None) -> nn.Module:
    """The faster inference copy of frozen ``net`` (cached per network object and settings; see the module
    docstring). The copy shares no parameters with ``net``, is in eval mode and needs no gradients."""
    settings = settings or _SETTINGS
    with _LOCK:
        per = _COPIES.get(net)
        if per is not None and settings in per:
            return per[settings]
    fast = _rewrite(copy.deepcopy(net).eval().requires_grad_(False), settings)
    nhwc = _use_channels_last(fast, settings.channels_last)
    if nhwc:
        fast = fast.to(memory_format=torch.channels_last)
    fast._synthaug_channels_last = nhwc  # type: ignore[attr-defined]
    with _LOCK:
        _COPIES.setdefault(net, {})[settings] = fast
    return fast


def _to_channels_last(v: Any) -> Any:
    if isinstance(v, torch.Tensor) and v.ndim == 4 and v.is_floating_point():
        return v.contiguous(memory_format=torch.channels_last)
    return v


def infer(net: nn.Module, *args: Any, method: str = "forward", **kwargs: Any) -> torch.Tensor:
    """``net.<method>(*args, **kwargs)`` for a frozen network: its inference copy (unless the settings say
    ``optimise=False``), inference mode, the current :func:`precision`; returns a float32 tensor, contiguous,
    usable outside inference mode (also in autograd, e.g. as training data)."""
    settings = _SETTINGS
    target = inference_copy(net, settings) if settings.optimise else net
    if getattr(target, "_synthaug_channels_last", False):
        args = tuple(_to_channels_last(a) for a in args)
        kwargs = {k: _to_channels_last(v) for k, v in kwargs.items()}
    device = _device_of(net, args)
    mode = current_precision()
    if mode != "fp32":  # inputs in the autocast dtype too, so maps built from them (one-hot, painted codes) match
        low = _AUTOCAST_DTYPE[mode]
        args = tuple(_cast(a, low) for a in args)
        kwargs = {k: _cast(v, low) for k, v in kwargs.items()}
    fn: Callable[..., torch.Tensor] = target if method == "forward" else getattr(target, method)
    with torch.inference_mode(), _autocast(device, mode):
        out = fn(*args, **kwargs)
    if not isinstance(out, torch.Tensor):
        raise ValidationError(f"{type(net).__name__}.{method} returned {type(out).__name__}, not a tensor.")
    # A normal tensor (not an inference tensor), float32, in the standard layout: one copy of a 1-channel output.
    return out.to(dtype=torch.float32, memory_format=torch.contiguous_format, copy=True)


def _cast(v: Any, dtype: torch.dtype) -> Any:
    if isinstance(v, torch.Tensor) and v.is_floating_point():
        return v.to(dtype)
    return v


def _device_of(net: nn.Module, args: tuple[Any, ...]) -> torch.device:
    for a in args:
        if isinstance(a, torch.Tensor):
            return a.device
    p = next(net.parameters(), None)
    return p.device if p is not None else torch.device("cpu")

