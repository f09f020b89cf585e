"""Heavy, non-linear intensity augmentation: SmaugLab's retained nnU-Net recipe, batched on the device.

SmaugLab (formerly AugLab; Molinier et al. 2026, "One Sequence to Segment Them All", arXiv 2605.03098) trains
nnU-Net with a chain of intensity operations on the GPU, each with its own probability, on top of nnU-Net's
spatial augmentation. :class:`HeavyIntensityAugment` implements the chain retained in their configuration
``smauglab/configs/transform_params_one-sequence-to-segment-them-all.json`` (neuropoly/SmaugLab), with its
published probabilities and strengths as the option defaults, in SmaugLab's pipeline order:

==================  =====  ======================================================================================
op                  p      what it does (``z`` is the sample in standardised units, see below)
==================  =====  ======================================================================================
inversion           0.25   ``max(z) - z``; mean and std restored
histeq              0.25   256-bin histogram equalisation; with probability 0.6 blended ``a z + (1 - a) eq(z)``,
                           ``a ~ U(0, 1)``; mean and std restored
redistribute        0.4    per-label intensity redistribution (uses the label map): every label region adds a
                           signed Gaussian bump centred on its mean intensity, its width from the contrast with a
                           1-3 voxel ring around it (only inside the regions with probability 0.25); std restored
scharr              0.25   Scharr gradient magnitude (sum of the absolute directional responses); blended with
                           probability 0.5; mean and std restored
unsharp             0.25   ``z + k (z - G_s z)``, 3-tap Gaussian ``s ~ U(0, 1)`` per axis, ``k ~ U(0, 1.5)``;
                           blended with probability 0.5
randconv            0.2    convolution with a random ``N(0, 1/k^2)`` kernel of size k in {3, 5, 7}; blended with
                           probability 0.5; mean and std restored
noise               0.1    additive Gaussian noise of std ``U(0, 1)``
blur                0.2    3-tap Gaussian blur, ``s ~ U(0, 1)`` per axis
brightness          0.15   ``z * U(0.75, 1.25)``
gamma               0.3    min-max gamma ``U(0.7, 1.5)``; mean and std restored
inv_gamma           0.1    the same on ``-z`` (inverted gamma)
contrast            0.15   ``(z - mean) * U(0.75, 1.25) + mean``
log1p ... sigmoid   0.1    each of log1p, sqrt, sin, exp, sigmoid of the [0, 1]-rescaled sample, in turn;
                           mean and std restored
lowres              0.25   linear down-sampling by ``U(0.5, 1)`` per axis and back (no anti-aliasing)
bias                0.15   multiplicative ``exp(polynomial)`` field of order 3, coefficients ``U(-0.2, 0.2)``;
                           mean and std restored
==================  =====  ======================================================================================

SmaugLab applies the chain to nnU-Net's normalised batches. This transform receives raw intensities (any
scale), so it first standardises each sample (``z = (x - m) / s`` with the per-sample mean and std over the
whole sample, ``standardize="image"``, or over its labelled foreground, ``"foreground"``, the analogue of
nnU-Net's CT normalisation by the dataset's foreground statistics), runs the chain on ``z`` and maps the
result back with the same ``m`` and ``s``. Only the noise, brightness and bias strengths depend on that
choice; every other op is invariant to an affine change of the input.

Differences from SmaugLab, all needed for a per-sample, replayable transform: the blend decision and weight
are drawn per sample (SmaugLab draws them once per batch), and so are the blur/unsharp sigmas; borders are
reflected for every filter; the low-resolution op also runs on 2D data (SmaugLab's is 3D only). A sample in
which no op fires is returned bit-identical; a sample whose output would not be finite keeps its input.

Randomness: one ``torch.Generator().manual_seed(seed)`` per sample draws every parameter on the host in a
fixed order (the random-convolution kernels and the per-label redistribution values from generators seeded
by it); everything is moved to the device in one transfer. The noise is drawn on the device from a
per-sample generator seeded from the host draw. A sample's output depends only on its own image, label and
seed: a batch gives what per-sample calls give. Labels are never changed (returned as the same object).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

from synthaug.errors import ValidationError
from synthaug.transforms.labels import check_image_label_batch
from synthaug.transforms.labels_to_image import _pair, apply_axis_matrices
from synthaug.transforms.options import Options, OptionsTransform

__all__ = [
    "HeavyIntensityAugment",
    "HeavyIntensityOptions",
    "HeavyIntensityParams",
    "OPS",
    "STANDARDIZE",
    "only_op",
]

#: The ops in SmaugLab's pipeline order (``smauglab/registry.py`` PIPELINE_ORDER).
OPS: tuple[str, ...] = (
    "inversion", "histeq", "redistribute", "scharr", "unsharp", "randconv", "noise", "blur", "brightness",
    "gamma", "inv_gamma", "contrast", "log1p", "sqrt", "sin", "exp", "sigmoid", "lowres", "bias",
)
STANDARDIZE: tuple[str, ...] = ("image", "foreground")
_HIST_BINS = 256
_MAX_KERNEL = 7  # largest random-convolution kernel (the kernels are zero-padded to it)
_REDIST_NOISE = (0.1, 0.3)  # SmaugLab's std_noise_range of the redistribution
_EPS = 1e-8


def _probability_field(op: str) -> str:
    """The option holding ``op``'s probability."""
    return f"{op}_p"


def only_op(op: str) -> dict[str, float]:
    """Options that fire ``op`` on every sample and nothing else (for tests, ablations and pictures).

    >>> HeavyIntensityAugment(**only_op("gamma")).gamma_p
    1.0
    """
    if op not in OPS:
        from synthaug._validate import closest

        raise ValidationError(f"unknown op {op!r}; the ops are {list(OPS)}.{closest(op, OPS)}")
    out = {_probability_field(o): 0.0 for o in OPS}
    out[_probability_field(op)] = 1.0
    return out


@dataclass(frozen=True)
class HeavyIntensityParams:
    """Everything random about one call: replaying it gives the same output."""

    seed: int
    apply: bool


def _prob(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValidationError(f"{name} must be a probability in [0, 1], got {value!r}.")
    return float(value)


def _nonneg(name: str, value: Any, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= high:
        raise ValidationError(f"{name} must be a number in [0, {high}], got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class HeavyIntensityOptions(Options):
    """Options of :class:`HeavyIntensityAugment` (and of its MONAI, TorchIO and recipe faces).

    Defaults: SmaugLab's published configuration (``transform_params_one-sequence-to-segment-them-all.json``,
    neuropoly/SmaugLab; Molinier et al. 2026). Every ``*_p`` is the per-sample probability of one op.

    Args:
        inversion_p: probability of the inversion ``max - z`` (SmaugLab ``RandomInverseGPU``, 0.25).
        histeq_p: probability of histogram equalisation (``RandomHistogramEqualizationGPU``, 0.25).
        histeq_mix_p: probability that the equalised sample is blended with the original (0.6).
        redistribute_p: probability of the per-label redistribution (``RandomRedistributeSegGPU``, 0.4).
        redistribute_in_seg_p: probability that the redistribution bumps act only inside their regions (0.25).
        scharr_p: probability of the Scharr edge magnitude (``RandomScharrGPU``, 0.25).
        scharr_mix_p: probability that the edge image is blended with the original (0.5).
        unsharp_p: probability of the unsharp mask (``RandomUnsharpMaskGPU``, 0.25).
        unsharp_sigma: largest sigma (voxels) of its 3-tap Gaussian, drawn ``U(0, unsharp_sigma)`` per axis (1.0).
        unsharp_amount: largest sharpening amount, drawn ``U(0, unsharp_amount)`` (1.5).
        unsharp_mix_p: probability that the sharpened sample is blended with the original (0.5).
        randconv_p: probability of the random convolution (``RandomRandConvGPU``, 0.2).
        randconv_kernel_sizes: odd kernel sizes to choose from, at most 7 ((3, 5, 7)).
        randconv_mix_p: probability that the convolved sample is blended with the original (0.5).
        noise_p: probability of additive Gaussian noise (``RandomGaussianNoiseGPU``, 0.1).
        noise_std: largest noise std in standardised units, drawn ``U(0, noise_std)`` (1.0).
        blur_p: probability of the Gaussian blur (``RandomGaussianBlurGPU``, 0.2).
        blur_sigma: largest blur sigma (voxels, 3-tap kernel), drawn ``U(0, blur_sigma)`` per axis (1.0).
        brightness_p: probability of the multiplicative brightness (``RandomBrightnessGPU``, 0.15).
        brightness_range: its factor range ((0.75, 1.25)).
        gamma_p: probability of the gamma transform (``RandomGammaGPU``, 0.3).
        inv_gamma_p: probability of the inverted gamma transform (``RandomInvGammaGPU``, 0.1).
        gamma_range: the gamma range of both ((0.7, 1.5)).
        contrast_p: probability of the contrast change about the mean (``RandomContrastGPU``, 0.15).
        contrast_range: its factor range ((0.75, 1.25)).
        log1p_p, sqrt_p, sin_p, exp_p, sigmoid_p: probabilities of the non-linear remaps of the [0, 1]-rescaled
            sample, each drawn independently and applied in that order (``RandomLog1pGPU`` ...
            ``RandomSigmoidGPU``, 0.1 each).
        lowres_p: probability of the low-resolution simulation (``RandomLowResTransformGPU``, 0.25).
        lowres_scale: range of the per-axis down-sampling factor ((0.5, 1.0)).
        bias_p: probability of the polynomial bias field (``RandomBiasFieldGPU``, 0.15).
        bias_coefficient: its coefficients are ``U(-bias_coefficient, bias_coefficient)`` (0.2).
        bias_order: its polynomial order (SmaugLab's default 3).
        standardize: the units the chain runs in: ``"image"`` (each sample's mean and std) or ``"foreground"``
            (mean and std over the voxels labelled > 0, as nnU-Net's CT normalisation uses the foreground;
            the whole sample when the foreground is empty or flat).
    """

    inversion_p: float = 0.25
    histeq_p: float = 0.25
    histeq_mix_p: float = 0.6
    redistribute_p: float = 0.4
    redistribute_in_seg_p: float = 0.25
    scharr_p: float = 0.25
    scharr_mix_p: float = 0.5
    unsharp_p: float = 0.25
    unsharp_sigma: float = 1.0
    unsharp_amount: float = 1.5
    unsharp_mix_p: float = 0.5
    randconv_p: float = 0.2
    randconv_kernel_sizes: tuple[int, ...] = (3, 5, 7)
    randconv_mix_p: float = 0.5
    noise_p: float = 0.1
    noise_std: float = 1.0
    blur_p: float = 0.2
    blur_sigma: float = 1.0
    brightness_p: float = 0.15
    brightness_range: tuple[float, float] = (0.75, 1.25)
    gamma_p: float = 0.3
    inv_gamma_p: float = 0.1
    gamma_range: tuple[float, float] = (0.7, 1.5)
    contrast_p: float = 0.15
    contrast_range: tuple[float, float] = (0.75, 1.25)
    log1p_p: float = 0.1
    sqrt_p: float = 0.1
    sin_p: float = 0.1
    exp_p: float = 0.1
    sigmoid_p: float = 0.1
    lowres_p: float = 0.25
    lowres_scale: tuple[float, float] = (0.5, 1.0)
    bias_p: float = 0.15
    bias_coefficient: float = 0.2
    bias_order: int = 3
    standardize: str = "image"

    def validate(self) -> None:
        for name in self.names():
            if name.endswith("_p"):
                self._set(name, _prob(name, getattr(self, name)))
        self._set("unsharp_sigma", _nonneg("unsharp_sigma", self.unsharp_sigma, 10.0))
        self._set("unsharp_amount", _nonneg("unsharp_amount", self.unsharp_amount, 10.0))
        self._set("noise_std", _nonneg("noise_std", self.noise_std, 10.0))
        self._set("blur_sigma", _nonneg("blur_sigma", self.blur_sigma, 10.0))
        self._set("bias_coefficient", _nonneg("bias_coefficient", self.bias_coefficient, 2.0))
        sizes = self.randconv_kernel_sizes
        if isinstance(sizes, (int, str)) or not isinstance(sizes, Sequence) or not sizes or any(
            isinstance(k, bool) or not isinstance(k, int) or k < 1 or k > _MAX_KERNEL or k % 2 == 0 for k in sizes
        ):
            raise ValidationError(
                f"randconv_kernel_sizes must be a non-empty list of odd integers in [1, {_MAX_KERNEL}], got {sizes!r}."
            )
        self._set("randconv_kernel_sizes", tuple(int(k) for k in sizes))
        self._set("brightness_range", _pair("brightness_range", self.brightness_range, low=0.0, high=10.0))
        self._set("gamma_range", _pair("gamma_range", self.gamma_range, low=1e-3, high=10.0))
        self._set("contrast_range", _pair("contrast_range", self.contrast_range, low=0.0, high=10.0))
        self._set("lowres_scale", _pair("lowres_scale", self.lowres_scale, low=0.05, high=1.0))
        if isinstance(self.bias_order, bool) or not isinstance(self.bias_order, int) or not 0 <= self.bias_order <= 6:
            raise ValidationError(f"bias_order must be an integer in [0, 6], got {self.bias_order!r}.")
        if self.standardize not in STANDARDIZE:
            from synthaug._validate import closest

            hint = closest(str(self.standardize), STANDARDIZE)
            raise ValidationError(f"standardize={self.standardize!r} is not one of {list(STANDARDIZE)}.{hint}")


# ------------------------------------------------------------------------------------------ helpers


def _bc(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(B,)`` -> ``(B, 1, ...)`` broadcastable against ``like``."""
    return v.reshape(-1, *([1] * (like.ndim - 1)))


def _moments(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample mean and population std, ``(B,)`` each."""
    flat = v.flatten(1)
    mean = flat.mean(1)
    return mean, (flat - mean[:, None]).square().mean(1).sqrt()


def _restore(v: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """``v`` rescaled to the per-sample mean and std in ``stats`` (SmaugLab's ``retain_stats``)."""
    mean, std = _moments(v)
    return (v - _bc(mean, v)) / _bc(std + _EPS, v) * _bc(stats[1], v) + _bc(stats[0], v)


def _range(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = v.flatten(1)
    return flat.amin(1), flat.amax(1)


def _blend(v: torch.Tensor, out: torch.Tensor, mixed: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``alpha v + (1 - alpha) out`` where ``mixed`` (per sample), else ``out``."""
    a = _bc(alpha, v)
    return torch.where(_bc(mixed > 0.5, v), a * v + (1.0 - a) * out, out)


def _reflect_index(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices of an axis of length ``n`` reflected by ``pad`` on both sides (clamped for tiny axes)."""
    idx = torch.arange(-pad, n + pad, device=device).abs()
    idx = torch.where(idx > n - 1, 2 * (n - 1) - idx, idx)
    return idx.clamp(0, n - 1)


def _reflect_pad(v: torch.Tensor, pad: int) -> torch.Tensor:
    for axis in range(2, v.ndim):
        v = v.index_select(axis, _reflect_index(v.shape[axis], pad, v.device))
    return v


def _taps3(v: torch.Tensor, axis: int, w: tuple[float, float, float] | torch.Tensor) -> torch.Tensor:
    """3-tap correlation along spatial ``axis`` with reflected borders; ``w``: 3 numbers or per sample ``(B, 3)``."""
    dim = 2 + axis
    n = v.shape[dim]
    vp = v.index_select(dim, _reflect_index(n, 1, v.device))
    if not isinstance(w, torch.Tensor):
        return w[0] * vp.narrow(dim, 0, n) + w[1] * vp.narrow(dim, 1, n) + w[2] * vp.narrow(dim, 2, n)
    return (_bc(w[:, 0], v) * vp.narrow(dim, 0, n) + _bc(w[:, 1], v) * vp.narrow(dim, 1, n)
            + _bc(w[:, 2], v) * vp.narrow(dim, 2, n))


def _dilate(mask: torch.Tensor) -> torch.Tensor:
    """Binary dilation by the full 3^d neighbourhood (separable running maximum; the border repeats itself)."""
    for axis in range(mask.ndim - 2):
        dim, n = 2 + axis, mask.shape[2 + axis]
        padded = mask.index_select(dim, torch.arange(-1, n + 1, device=mask.device).clamp(0, n - 1))
        mask = torch.maximum(torch.maximum(padded.narrow(dim, 0, n), padded.narrow(dim, 1, n)), padded.narrow(dim, 2, n))
    return mask


def _gauss3(v: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Separable 3-tap Gaussian blur with per-sample, per-axis ``sigmas`` ``(B, dims)`` (sigma 0 = identity)."""
    offsets = torch.arange(-1, 2, device=v.device, dtype=v.dtype)
    w = torch.exp(-(offsets ** 2) / (2 * sigmas[..., None].clamp_min(1e-3) ** 2))
    w = w / w.sum(-1, keepdim=True)  # (B, dims, 3)
    for axis in range(v.ndim - 2):
        v = _taps3(v, axis, w[:, axis])
    return v


def _scharr(v: torch.Tensor) -> torch.Tensor:
    """Sum over axes of the absolute Scharr responses (derivative [-1, 0, 1], smoothing [3, 10, 3] elsewhere)."""
    deriv, smooth = (-1.0, 0.0, 1.0), (3.0, 10.0, 3.0)
    dims = v.ndim - 2
    total = torch.zeros_like(v)
    for d in range(dims):
        r = v
        for axis in range(dims):
            r = _taps3(r, axis, deriv if axis == d else smooth)
        total = total + r.abs()
    return total


@lru_cache(maxsize=256)
def _lowres_matrix(n: int, m: int) -> torch.Tensor:
    """``(n, n)`` float64 operator of linear down-sampling to ``m`` points and back (``align_corners=False``)."""
    eye = torch.eye(n, dtype=torch.float64)[None]  # n basis signals of length n
    down = F.interpolate(eye, size=m, mode="linear", align_corners=False)
    return F.interpolate(down, size=n, mode="linear", align_corners=False)[0].T.contiguous()


def _bias_terms(order: int, dims: int) -> list[tuple[int, ...]]:
    """Exponents of the polynomial terms of total degree <= ``order`` (SmaugLab's enumeration)."""
    if dims == 2:
        return [(i, j) for i in range(order + 1) for j in range(order + 1 - i)]
    return [(i, j, k) for i in range(order + 1) for j in range(order + 1 - i) for k in range(order + 1 - i - j)]


_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "log1p": torch.log1p,
    "sqrt": torch.sqrt,
    "sin": torch.sin,
    "exp": torch.exp,
    "sigmoid": lambda x: 1.0 / (1.0 + torch.exp(-x)),  # longhand: torch.sigmoid's SIMD tail differs in the last bit
}


# ------------------------------------------------------------------------------------------ host draws


class _Layout:
    """Named column slices of the per-sample parameter table."""

    def __init__(self, widths: Sequence[tuple[str, int]]) -> None:
        self.slices: dict[str, slice] = {}
        start = 0
        for name, width in widths:
            self.slices[name] = slice(start, start + width)
            start += width
        self.width = start

    def __getitem__(self, name: str) -> slice:
        return self.slices[name]


def _layout(dims: int, n_bias: int) -> _Layout:
    return _Layout([
        ("apply", len(OPS)),
        ("histeq", 2), ("redistribute", 4), ("scharr", 2),
        ("unsharp_sigma", dims), ("unsharp", 3),
        ("randconv", 4), ("noise", 2), ("blur_sigma", dims), ("brightness", 1), ("gamma", 1), ("inv_gamma", 1),
        ("contrast", 1), ("lowres", dims), ("bias", n_bias),
    ])


class HeavyIntensityAugment(OptionsTransform):
    """SmaugLab's heavy intensity augmentation chain (see the module docstring).

    Options: :class:`HeavyIntensityOptions`; ``prob`` is the probability that a call runs the chain at all
    (each op then fires with its own probability).

    Example:
        >>> t = HeavyIntensityAugment(**only_op("inversion"))
        >>> image = torch.linspace(0, 1, 64).reshape(1, 8, 8); label = torch.zeros(1, 8, 8, dtype=torch.long)
        >>> out, same = t.apply(image, label, HeavyIntensityParams(0, True))
        >>> bool(out[0, 0, 0] > out[0, -1, -1]) and same is label
        True
    """

    Options = HeavyIntensityOptions
    needs_foreground = False
    options: HeavyIntensityOptions

    # ------------------------------------------------------------------ sampling
    def params_from_seed(self, seed: int, apply: bool = True) -> HeavyIntensityParams:
        return HeavyIntensityParams(int(seed), bool(apply))

    def _probabilities(self) -> torch.Tensor:
        o = self.options
        return torch.tensor([getattr(o, _probability_field(op)) for op in OPS], dtype=torch.float64)

    def _draw(self, seed: int, dims: int, lay: _Layout) -> torch.Tensor:
        """One sample's parameter row (float64), every value drawn in a fixed order whether or not it is used."""
        o = self.options
        g = torch.Generator().manual_seed(int(seed))

        def u(n: int = 1, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
            return lo + torch.rand(n, generator=g, dtype=torch.float64) * (hi - lo)

        def seed_value() -> torch.Tensor:  # an integer seed carried exactly by a float64 column
            return torch.tensor([float(torch.randint(0, 2**52, (), generator=g))], dtype=torch.float64)

        row = torch.zeros(lay.width, dtype=torch.float64)
        row[lay["apply"]] = (u(len(OPS)) < self._probabilities()).double()
        mix = torch.cat([(u() < o.histeq_mix_p).double(), u()])
        row[lay["histeq"]] = mix
        row[lay["redistribute"]] = torch.cat([
            (u() < o.redistribute_in_seg_p).double(),
            torch.randint(1, 4, (1,), generator=g).double(),     # dilation iterations 1..3
            u(1, *_REDIST_NOISE),
            seed_value(),                                       # per-label values (their count varies)
        ])
        row[lay["scharr"]] = torch.cat([(u() < o.scharr_mix_p).double(), u()])
        row[lay["unsharp_sigma"]] = u(dims, 0.0, o.unsharp_sigma)
        row[lay["unsharp"]] = torch.cat([u(1, 0.0, o.unsharp_amount), (u() < o.unsharp_mix_p).double(), u()])
        sizes = o.randconv_kernel_sizes
        k = sizes[int(torch.randint(0, len(sizes), (), generator=g))]
        row[lay["randconv"]] = torch.cat([torch.tensor([float(k)], dtype=torch.float64),
                                          (u() < o.randconv_mix_p).double(), u(), seed_value()])
        row[lay["noise"]] = torch.cat([u(1, 0.0, o.noise_std), seed_value()])
        row[lay["blur_sigma"]] = u(dims, 0.0, o.blur_sigma)
        row[lay["brightness"]] = u(1, *o.brightness_range)
        row[lay["gamma"]] = u(1, *o.gamma_range)
        row[lay["inv_gamma"]] = u(1, *o.gamma_range)
        row[lay["contrast"]] = u(1, *o.contrast_range)
        row[lay["lowres"]] = u(dims, *o.lowres_scale)
        c = o.bias_coefficient
        row[lay["bias"]] = u(lay["bias"].stop - lay["bias"].start, -c, c)
        return row

    @staticmethod
    def _randconv_kernel(row: torch.Tensor, lay: _Layout, dims: int) -> torch.Tensor:
        """The sample's random kernel, zero-padded to 7 per axis (centred), float64."""
        k = int(row[lay["randconv"]][0])
        g = torch.Generator().manual_seed(int(row[lay["randconv"]][3]))
        kernel = torch.randn((k,) * dims, generator=g, dtype=torch.float64) / k  # std 1 / sqrt(k * k), as SmaugLab
        pad = (_MAX_KERNEL - k) // 2
        return F.pad(kernel, (pad, pad) * dims)

    @staticmethod
    def _redistribution_values(row: torch.Tensor, lay: _Layout, n_classes: int, width: int) -> torch.Tensor:
        """``(2, width)`` float64: per-label uniform ``u`` and sign factor in [-1, 1] (label values 0..n-1)."""
        g = torch.Generator().manual_seed(int(row[lay["redistribute"]][3]))
        vals = torch.zeros(2, width, dtype=torch.float64)
        vals[0, :n_classes] = torch.rand(n_classes, generator=g, dtype=torch.float64)
        vals[1, :n_classes] = 2 * torch.rand(n_classes, generator=g, dtype=torch.float64) - 1
        return vals

    # ------------------------------------------------------------------ application
    @torch.no_grad()
    def apply_batch(
        self, images: torch.Tensor, labels: torch.Tensor, *, seeds: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Batched chain: ``images`` (B, 1, *spatial) float in any intensity scale, ``labels`` (B, 1, *spatial)
        integer (negative values are background); one seed per sample. Returns the augmented images (the input's
        device and dtype) and ``labels`` untouched (the same object).
        """
        if not isinstance(labels, torch.Tensor):
            raise ValidationError(
                f"labels must be a torch.Tensor (B, 1, *spatial) of integer label values (the redistribution op "
                f"reads them), got {type(labels).__name__}."
            )
        lab = check_image_label_batch(images, labels, allow_empty=True).clamp_min(0)  # padding (-1) is background
        b = images.shape[0]
        if len(seeds) != b:
            raise ValidationError(f"seeds must have one entry per sample ({b}), got {len(seeds)}.")
        o = self.options
        device, dtype = images.device, images.dtype
        work = torch.float64 if dtype == torch.float64 else torch.float32
        spatial, dims = tuple(images.shape[2:]), images.ndim - 2
        terms = _bias_terms(o.bias_order, dims)
        lay = _layout(dims, len(terms))
        rows = torch.stack([self._draw(int(s), dims, lay) for s in seeds])        # (B, P) on the host
        fires = rows[:, lay["apply"]] > 0.5                                      # (B, n_ops) on the host
        active = [i for i in range(b) if bool(fires[i].any())]
        if not active:  # no op fired anywhere: the input itself
            return images, labels
        op_index = {op: j for j, op in enumerate(OPS)}

        def members(op: str) -> list[int]:
            return [i for i in active if bool(fires[i, op_index[op]])]

        pos = {i: n for n, i in enumerate(active)}  # batch index -> row among the active samples
        # per-sample extras, only for the samples that need them (each in its op's member order)
        conv_idx = members("randconv")
        kernels = (torch.stack([self._randconv_kernel(rows[i], lay, dims) for i in conv_idx]) if conv_idx
                   else torch.zeros(0))
        low_idx = members("lowres")
        low_mats = []
        for a, n in enumerate(spatial):
            mats = [_lowres_matrix(n, max(1, round(float(rows[i, lay["lowres"]][a]) * n))) for i in low_idx]
            low_mats.append(torch.stack(mats) if mats else torch.zeros(0))
        red_idx = members("redistribute")
        presence = torch.zeros(0, 0, dtype=torch.bool)
        red_vals = torch.zeros(0)
        if red_idx:  # which label values each redistributed sample holds (one device -> host transfer)
            sub = lab[torch.tensor(red_idx, device=device)]
            k = int(sub.max()) + 1
            offs = torch.arange(len(red_idx), device=device).reshape(-1, *([1] * (sub.ndim - 1))) * k
            presence = (torch.bincount((sub + offs).flatten(), minlength=len(red_idx) * k).reshape(-1, k) > 0).cpu()
            tops = [int(row.nonzero().max()) + 1 for row in presence]
            red_vals = torch.stack([self._redistribution_values(rows[i], lay, t, k) for i, t in zip(red_idx, tops)])
        positions = [torch.tensor([pos[i] for i in members(op)], dtype=torch.float64) for op in OPS]
        host = [torch.tensor(active, dtype=torch.float64), rows[active], kernels, red_vals, presence.double(),
                *low_mats, *positions]
        moved = _to_device(host, device, work)                                   # the one host -> device move
        act, table, kernels_d, red_d, presence_d = moved[0].long(), moved[1], moved[2], moved[3], moved[4] > 0.5
        low_d = list(moved[5 : 5 + dims])
        where_d = {op: t.long() for op, t in zip(OPS, moved[5 + dims :])}

        # standardise the active samples, run the chain, map back
        x = images.index_select(0, act).to(work)
        lab_a = lab.index_select(0, act)
        mean, std = self._reference(x, lab_a)
        z = (x - _bc(mean, x)) / _bc(torch.where(std > 0, std, torch.ones_like(std)), x)
        for op in OPS:
            rows_op = members(op)
            if not rows_op:
                continue
            where = where_d[op]
            prm = table.index_select(0, where)
            v = z.index_select(0, where)
            if op == "redistribute":
                most = int(max(float(rows[i, lay["redistribute"]][1]) for i in rows_op))
                v = self._redistribute(v, lab_a.index_select(0, where), prm, lay, red_d, presence_d, presence, most)
            elif op == "randconv":
                v = self._randconv(v, prm, lay, kernels_d)
            elif op == "noise":
                seeds_op = [int(rows[i, lay["noise"]][1]) for i in rows_op]  # exact: from the float64 host rows
                v = self._noise(v, prm[:, lay["noise"]][:, 0], seeds_op)
            elif op == "lowres":
                v = apply_axis_matrices(v, low_d)
            elif op == "bias":
                v = self._bias(v, prm[:, lay["bias"]], terms)
            else:
                v = self._pointwise(op, v, prm, lay)
            z = z.index_copy(0, where, v)

        y = z * _bc(std, z) + _bc(mean, z)
        ok = torch.isfinite(y).flatten(1).all(1)
        y = torch.where(_bc(ok, y), y, x)
        out = images.clone()
        out[act] = y.to(dtype)
        return out, labels

    # ------------------------------------------------------------------ the ops
    def _reference(self, x: torch.Tensor, lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample mean and std that define the standardised units (see ``standardize``)."""
        mean, std = _moments(x)
        if self.options.standardize == "image":
            return mean, std
        fg = (lab > 0).flatten(1).to(x.dtype)
        n = fg.sum(1)
        flat = x.flatten(1)
        fmean = (flat * fg).sum(1) / n.clamp_min(1.0)
        fstd = (((flat - fmean[:, None]) ** 2) * fg).sum(1).div(n.clamp_min(1.0)).sqrt()
        use = (n >= 2) & (fstd > 1e-3 * std)
        return torch.where(use, fmean, mean), torch.where(use, fstd, std)

    def _pointwise(self, op: str, v: torch.Tensor, prm: torch.Tensor, lay: _Layout) -> torch.Tensor:
        """The ops that need no label, kernel or generator."""
        stats = _moments(v)
        if op == "inversion":
            return _restore(_bc(_range(v)[1], v) - v, stats)
        if op == "histeq":
            eq = self._equalise(v)
            return _restore(_blend(v, eq, prm[:, lay["histeq"]][:, 0], prm[:, lay["histeq"]][:, 1]), stats)
        if op == "scharr":
            edges = _scharr(v)
            return _restore(_blend(v, edges, prm[:, lay["scharr"]][:, 0], prm[:, lay["scharr"]][:, 1]), stats)
        if op == "unsharp":
            amount, mixed, alpha = prm[:, lay["unsharp"]].unbind(1)
            sharp = v + _bc(amount, v) * (v - _gauss3(v, prm[:, lay["unsharp_sigma"]]))
            return _blend(v, sharp, mixed, alpha)
        if op == "blur":
            return _gauss3(v, prm[:, lay["blur_sigma"]])
        if op == "brightness":
            return v * _bc(prm[:, lay["brightness"]][:, 0], v)
        if op in ("gamma", "inv_gamma"):
            w = -v if op == "inv_gamma" else v
            lo, hi = _range(w)
            rng = _bc(hi - lo, w)
            out = ((w - _bc(lo, w)) / (rng + _EPS)).clamp_min(0).pow(_bc(prm[:, lay[op]][:, 0], w)) * rng + _bc(lo, w)
            out = _restore(out, _moments(w))
            return -out if op == "inv_gamma" else out
        if op == "contrast":
            m = _bc(stats[0], v)
            return (v - m) * _bc(prm[:, lay["contrast"]][:, 0], v) + m
        if op in _FUNCTIONS:
            lo, hi = _range(v)
            unit = (v - _bc(lo, v)) / _bc(hi - lo + 1e-5, v)
            return _restore(_FUNCTIONS[op](unit), stats)
        raise AssertionError(f"unhandled op {op}")  # pragma: no cover - OPS is closed

    @staticmethod
    def _equalise(v: torch.Tensor) -> torch.Tensor:
        """256-bin histogram equalisation per sample, mapped back onto the sample's own [min, max]."""
        n = v.shape[0]
        lo, hi = _range(v)
        width = (hi - lo) / _HIST_BINS
        bins = ((v - _bc(lo, v)) / _bc(width + 1e-10, v)).long().clamp(0, _HIST_BINS - 1).flatten(1)
        offsets = torch.arange(n, device=v.device)[:, None] * _HIST_BINS
        hist = torch.bincount((bins + offsets).flatten(), minlength=n * _HIST_BINS).reshape(n, _HIST_BINS)
        cdf = hist.cumsum(1).to(v.dtype)
        cdf_min = torch.where(cdf > 0, cdf, torch.full_like(cdf, math.inf)).amin(1, keepdim=True)
        cdf = (cdf - cdf_min) / (cdf[:, -1:] - cdf_min + 1e-10) * (hi - lo)[:, None] + lo[:, None]
        return cdf.gather(1, bins).reshape(v.shape)

    @staticmethod
    def _redistribute(v: torch.Tensor, lab: torch.Tensor, prm: torch.Tensor, lay: _Layout, red: torch.Tensor,
                      presence: torch.Tensor, presence_host: torch.Tensor, max_iterations: int) -> torch.Tensor:
        """Per-label redistribution (SmaugLab's ``RandomRedistributeSegGPU``), batched over samples.

        The rows of ``red`` (per-label uniform and sign) and ``presence`` (which label values each sample holds)
        follow the op's member order, as ``v`` does; ``presence_host`` is the host copy (no device sync) and
        ``max_iterations`` the largest dilation count among the samples.
        """
        n, k = presence.shape
        stats = _moments(v)
        lo, hi = _range(v)
        x01 = (v - _bc(lo, v)) / _bc((hi - lo).clamp_min(1e-6), v)
        in_seg, iters, noise_range = prm[:, lay["redistribute"]][:, :3].unbind(1)
        add = torch.zeros_like(x01)
        for cls in range(k):
            if not bool(presence_host[:, cls].any()):  # a value between the present ones
                continue
            mask = (lab == cls).to(x01.dtype)
            grown, dilated = mask, torch.zeros_like(mask)
            for step in range(1, max_iterations + 1):  # 3^d max filter, repeated; each sample keeps its own count
                grown = _dilate(grown)
                dilated = torch.where(_bc(iters, mask) == step, grown, dilated)
            ring = dilated * (1.0 - mask)
            m_mean, m_std = _masked_moments(x01, mask)
            r_mean, r_std = _masked_moments(x01, ring)
            contrast = ((m_mean - r_mean) * m_std / (r_std + 1e-6)).abs()
            width = (red[:, 0, cls] * noise_range + 0.4 * contrast).clamp_min(0.01) + 1e-6
            bump = torch.exp(-0.5 * ((x01 - _bc(m_mean, x01)) / _bc(width, x01)) ** 2)
            weight = red[:, 1, cls] * presence[:, cls] / (width * math.sqrt(2 * math.pi))  # signed normal pdf
            bump = bump * _bc(weight, x01)
            add = add + torch.where(_bc(in_seg > 0.5, x01), bump * mask, bump)
        a_lo, a_hi = _range(add)
        spread = a_hi - a_lo
        shifted = x01 + 2 * (add - _bc(a_lo, add)) / _bc(spread + 1e-6, add)
        x01 = torch.where(_bc(spread > 1e-8, x01), shifted, x01)
        has_fg = presence[:, 1:].any(1) if k > 1 else torch.zeros(n, dtype=torch.bool, device=v.device)
        return torch.where(_bc(has_fg, v), _restore(x01, stats), v)

    @staticmethod
    def _randconv(v: torch.Tensor, prm: torch.Tensor, lay: _Layout, kernels: torch.Tensor) -> torch.Tensor:
        n = v.shape[0]
        stats = _moments(v)
        vp = _reflect_pad(v, _MAX_KERNEL // 2)
        conv = F.conv2d if v.ndim == 4 else F.conv3d
        out = conv(vp.reshape(1, n, *vp.shape[2:]), kernels.reshape(n, 1, *kernels.shape[1:]).to(v.dtype),
                   groups=n).reshape(v.shape)
        _, mixed, alpha, _ = prm[:, lay["randconv"]].unbind(1)
        return _restore(_blend(v, out, mixed, alpha), stats)

    @staticmethod
    def _noise(v: torch.Tensor, std: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """``v + std * N(0, 1)``, the noise of each sample from a device generator seeded by its own draw."""
        spatial, device = v.shape[2:], v.device
        noise = torch.stack([
            torch.randn(spatial, generator=torch.Generator(device=device).manual_seed(int(s)), device=device,
                        dtype=v.dtype)
            for s in seeds
        ])[:, None]
        return v + _bc(std, v) * noise

    @staticmethod
    def _bias(v: torch.Tensor, coeffs: torch.Tensor, terms: list[tuple[int, ...]]) -> torch.Tensor:
        stats = _moments(v)
        spatial = v.shape[2:]
        dims = len(spatial)
        axes = [torch.linspace(-1.0, 1.0, s, device=v.device, dtype=v.dtype) for s in spatial]
        # SmaugLab's x is the last axis, y the one before, z the first
        grids = [axes[dims - 1 - i].reshape([1, 1] + [-1 if a == dims - 1 - i else 1 for a in range(dims)])
                 for i in range(dims)]
        field = torch.zeros_like(v)
        for t, powers in enumerate(terms):
            term = torch.ones((), device=v.device, dtype=v.dtype)
            for g, p in zip(grids, powers):
                if p:
                    term = term * g ** p
            field = field + _bc(coeffs[:, t], v) * term
        return _restore(v * torch.exp(field), stats)


def _masked_moments(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample mean and population std of ``x`` over the 0/1 ``mask`` (0 and 0 where the mask is empty)."""
    m = mask.flatten(1)
    v = x.flatten(1)
    n = m.sum(1).clamp_min(1.0)
    mean = (v * m).sum(1) / n
    var = ((v * v * m).sum(1) / n - mean * mean).clamp_min(0.0)
    return mean, var.sqrt()


def _to_device(parts: Sequence[torch.Tensor], device: torch.device, dtype: torch.dtype) -> list[torch.Tensor]:
    """Move host tensors to ``device`` in one transfer (concatenated, then split into views)."""
    flat = torch.cat([p.reshape(-1).to(torch.float64) for p in parts])
    moved = flat.to(device=device, dtype=dtype)
    out, start = [], 0
    for p in parts:
        out.append(moved[start : start + p.numel()].reshape(p.shape))
        start += p.numel()
    return out
