"""Whole-volume inference of patch networks (overlapping windows, averaged) and of 2D slice networks.

:func:`sliding_window_inference` cuts ``(B, C, *S)`` into overlapping patches (2D or 3D), runs the
network on batches of patches and averages the overlapping outputs, uniformly or with a Gaussian
weight that trusts patch centres more (ResGAN reconstructs 32^3 patches with stride 8, i.e. overlap
0.75, and plain averaging). Patch gathering and the weighted accumulation are single indexing /
``index_add_`` operations per batch of patches (no loops over voxels); the only Python loop is over
batches of patches. Accumulation is in float64 (where the device has it), so uniform averaging of an
identity network returns its input bit for bit.

:func:`slice_inference` runs a 2D network on every slice of a volume along one axis, in batches,
padding each slice to the network's size rule and cropping the output back.

>>> import torch
>>> x = torch.rand(1, 1, 20, 23, 17)
>>> y = sliding_window_inference(x, lambda p: p, patch_size=8, overlap=0.5)
>>> bool(torch.equal(x, y))
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from synthaug._validate import check_choice, check_range
from synthaug.errors import ShapeError, ValidationError

__all__ = ["WEIGHTINGS", "patch_starts", "patch_weight", "sliding_window_inference", "pad_to", "slice_inference"]

WEIGHTINGS: tuple[str, ...] = ("uniform", "gaussian")

Network = Callable[[torch.Tensor], torch.Tensor]


def _as_tuple(name: str, value: int | Sequence[int], n: int) -> tuple[int, ...]:
    if isinstance(value, bool):
        raise ValidationError(f"{name} must be a positive integer or {n} of them, got {value!r}.")
    if isinstance(value, int):
        out = (value,) * n
    else:
        try:
            out = tuple(int(v) for v in value)
        except (TypeError, ValueError):
            raise ValidationError(f"{name} must be a positive integer or {n} of them, got {value!r}.") from None
    if len(out) != n or any(v < 1 for v in out):
        raise ValidationError(f"{name} must be a positive integer or {n} positive integers, got {value!r}.")
    return out


def patch_starts(size: int, patch: int, stride: int) -> list[int]:
    """Start offsets ``0, stride, 2 stride, ...`` along one axis; the last window ends exactly at ``size``."""
    if patch >= size:
        return [0]
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


def patch_weight(
    patch_size: Sequence[int],
    weighting: str = "uniform",
    *,
    sigma_scale: float = 0.125,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The per-voxel weight of one output patch: ones, or a separable Gaussian (max 1, sigma = scale * size)."""
    check_choice("weighting", weighting, WEIGHTINGS)
    if weighting == "uniform":
        return torch.ones(tuple(patch_size), dtype=dtype, device=device)
    check_range("sigma_scale", float(sigma_scale), 1e-3, 10.0)
    w = torch.ones((), dtype=torch.float64, device=device)
    for p in patch_size:
        r = torch.arange(p, dtype=torch.float64, device=device) - (p - 1) / 2
        g = torch.exp(-(r**2) / (2 * (sigma_scale * p) ** 2))
        w = w[..., None] * (g / g.max())
    return w.clamp_min(1e-6).to(dtype)


def _index_grids(starts: torch.Tensor, patch: tuple[int, ...]) -> list[torch.Tensor]:
    """Per-axis index tensors ``(K, p0, 1, ...), (K, 1, p1, ...)`` broadcasting to ``(K, *patch)``."""
    dims = len(patch)
    grids = []
    for a, p in enumerate(patch):
        shape = [starts.shape[0]] + [1] * dims
        shape[1 + a] = p
        grids.append((starts[:, a, None] + torch.arange(p, device=starts.device)).reshape(shape))
    return grids


def sliding_window_inference(
    inputs: torch.Tensor,
    network: Network,
    *,
    patch_size: int | Sequence[int],
    overlap: float = 0.5,
    stride: int | Sequence[int] | None = None,
    weighting: str = "uniform",
    sigma_scale: float = 0.125,
    batch_size: int = 8,
    pad_mode: str = "replicate",
    pad_value: float = 0.0,
) -> torch.Tensor:
    """Run ``network`` on overlapping patches of ``inputs`` ``(B, C, *S)`` and average the outputs.

    Args:
        inputs: ``(B, C, *S)`` with 2 or 3 spatial dimensions, floating point.
        network: maps ``(N, C, *patch)`` to ``(N, C_out, *patch)`` (same spatial size).
        patch_size: patch size, one int or one per spatial axis.
        overlap: fraction of a patch shared with its neighbour, in ``[0, 1)``; ignored if ``stride``.
        stride: explicit step between patch starts (one int or one per axis).
        weighting: ``"uniform"`` (plain averaging) or ``"gaussian"`` (centres weigh more).
        sigma_scale: Gaussian sigma as a fraction of the patch size.
        batch_size: patches per network call (over all images of the batch).
        pad_mode: how axes smaller than the patch are padded: ``"replicate"`` or ``"constant"``
            (with ``pad_value``); the padding is cropped off the result.

    Returns ``(B, C_out, *S)`` on the input's device, in the network output's dtype. Runs without
    gradients. Every voxel is covered (the last window of each axis ends at the border).
    """
    if not isinstance(inputs, torch.Tensor):
        raise ValidationError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}.")
    if inputs.ndim not in (4, 5):
        raise ShapeError(
            f"inputs must have shape (B, C, H, W) or (B, C, D, H, W), got {tuple(inputs.shape)}. "
            "Add batch and channel dimensions with x[None, None]."
        )
    if not inputs.is_floating_point():
        raise ValidationError(f"inputs must be a floating-point tensor, got dtype {inputs.dtype}.")
    if not bool(torch.isfinite(inputs).all()):
        raise ValidationError("inputs contain NaN or infinite values; replace them (torch.nan_to_num) first.")
    dims = inputs.ndim - 2
    patch = _as_tuple("patch_size", patch_size, dims)
    check_choice("weighting", weighting, WEIGHTINGS)
    check_choice("pad_mode", pad_mode, ("replicate", "constant"))
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
    if stride is None:
        check_range("overlap", float(overlap), 0.0, 0.999)
        steps = tuple(max(1, int(math.floor(p * (1.0 - float(overlap))))) for p in patch)
    else:
        steps = _as_tuple("stride", stride, dims)
        if any(s > p for s, p in zip(steps, patch)):
            raise ValidationError(f"stride {steps} must not exceed patch_size {patch}: voxels would be skipped.")

    spatial = tuple(inputs.shape[2:])
    pad_amounts = [max(0, p - s) for p, s in zip(patch, spatial)]
    x = inputs
    if any(pad_amounts):
        pads: list[int] = []
        for amount in reversed(pad_amounts):  # F.pad wants the last axis first
            pads += [0, amount]
        x = F.pad(x, pads, mode="replicate") if pad_mode == "replicate" else F.pad(x, pads, value=float(pad_value))
    full = tuple(x.shape[2:])
    b, c = x.shape[:2]
    device = x.device

    n_vox = math.prod(full)
    acc_dtype = torch.float64 if device.type not in ("mps",) else torch.float32
    per_call = max(1, batch_size // b)
    # everything that depends only on the geometry (starts, per-chunk voxel indices, weights and their sum per voxel)
    # is built once per (shape, patch, steps, weighting, device) and reused by later calls
    starts, strides, weight, norm = _geometry(full, patch, steps, weighting, float(sigma_scale), acc_dtype,
                                                  device, per_call)
    uniform = weighting == "uniform"
    out: torch.Tensor | None = None
    with torch.no_grad():
        for k0 in range(0, starts.shape[0], per_call):
            chunk = starts[k0 : k0 + per_call]
            k = chunk.shape[0]
            grids = _index_grids(chunk, patch)
            lin = sum(g * s for g, s in zip(grids, strides)).reshape(-1)  # (K * prod(patch),)
            patches = x[(slice(None), slice(None), *grids)]  # (B, C, K, *patch)
            patches = patches.movedim(2, 1).reshape(b * k, c, *patch)
            pred = network(patches)
            if not isinstance(pred, torch.Tensor) or pred.ndim != dims + 2 or tuple(pred.shape[2:]) != patch or pred.shape[0] != b * k:
                got = tuple(pred.shape) if isinstance(pred, torch.Tensor) else type(pred).__name__
                raise ShapeError(
                    f"network must map patches {(b * k, c, *patch)} to (N, C_out, *{patch}) with the same spatial "
                    f"size, got {got}."
                )
            co = pred.shape[1]
            if out is None:
                out = torch.zeros(b, co, n_vox, dtype=acc_dtype, device=device)
                out_dtype = pred.dtype
            vals = pred.to(acc_dtype).reshape(b, k, co, *patch).movedim(1, 2)
            if not uniform:
                vals = vals * weight
            out.index_add_(2, lin, vals.reshape(b, co, -1))
    if out is None:  # pragma: no cover - there is always at least one patch
        raise ShapeError("no patch was cut from the input.")
    result = (out / norm).reshape(b, out.shape[1], *full).to(out_dtype)
    crop = (slice(None), slice(None), *(slice(0, n) for n in spatial))
    return result[crop]


_GEOMETRY: dict[tuple, tuple] = {}
_GEOMETRY_MAX = 4
_GEOMETRY_MAX_VOXELS = 2**22  # cache only geometries whose per-voxel weight sum is small (float64: <= 32 MiB)


def _geometry(full: tuple[int, ...], patch: tuple[int, ...], steps: tuple[int, ...], weighting: str, sigma_scale: float,
              acc_dtype: torch.dtype, device: torch.device, per_call: int) -> tuple:
    """Patch starts ``(K, dims)``, the patch weight and the summed weight per voxel: a pure function of the geometry,
    cached for a few volume shapes (a training run sees the same patch shape at every call)."""
    key = (full, patch, steps, weighting, sigma_scale, acc_dtype, str(device), per_call)
    hit = _GEOMETRY.get(key)
    if hit is not None:
        return hit
    dims = len(full)
    axes = [torch.tensor(patch_starts(n, p, s), device=device) for n, p, s in zip(full, patch, steps)]
    starts = torch.cartesian_prod(*axes).reshape(-1, dims)  # (K, dims)
    strides = [math.prod(full[a + 1 :]) for a in range(dims)]
    weight = patch_weight(patch, weighting, sigma_scale=sigma_scale, dtype=acc_dtype, device=device)
    norm = torch.zeros(math.prod(full), dtype=acc_dtype, device=device)
    for k0 in range(0, starts.shape[0], per_call):
        chunk = starts[k0 : k0 + per_call]
        norm.index_add_(0, _flat_index(chunk, patch, strides), weight.expand(chunk.shape[0], *patch).reshape(-1))
    out = (starts, strides, weight, norm)
    if math.prod(full) <= _GEOMETRY_MAX_VOXELS:
        if len(_GEOMETRY) >= _GEOMETRY_MAX:
            _GEOMETRY.pop(next(iter(_GEOMETRY)))
        _GEOMETRY[key] = out
    return out


def _flat_index(chunk: torch.Tensor, patch: tuple[int, ...], strides: list[int]) -> torch.Tensor:
    """Flat voxel index ``(K * prod(patch),)`` of every voxel of the patches starting at ``chunk`` ``(K, dims)``."""
    return sum(g * s for g, s in zip(_index_grids(chunk, patch), strides)).reshape(-1)


def pad_to(x: torch.Tensor, *, multiple: int = 1, min_size: Sequence[int] | int = 0, value: float = -1.0) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Centre-pad the spatial axes of ``(B, C, *S)`` with ``value`` to at least ``min_size`` and a
    multiple of ``multiple``; returns the padded tensor and the slices that crop it back."""
    dims = x.ndim - 2
    mins = (min_size,) * dims if isinstance(min_size, int) else tuple(min_size)
    pads: list[int] = []
    crop: list[slice] = [slice(None), slice(None)]
    for n, m in zip(x.shape[2:], mins):
        target = max(n, m)
        target = -(-target // multiple) * multiple
        lo = (target - n) // 2
        pads.append((lo, target - n - lo))
        crop.append(slice(lo, lo + n))
    flat: list[int] = []
    for lo, hi in reversed(pads):
        flat += [lo, hi]
    return (F.pad(x, flat, value=float(value)) if any(flat) else x), tuple(crop)


def slice_inference(
    volume: torch.Tensor,
    network: Network,
    *,
    axis: int = -1,
    batch_size: int = 16,
    multiple: int = 1,
    min_size: int | Sequence[int] = 0,
    pad_value: float = -1.0,
) -> torch.Tensor:
    """Run a 2D network on every slice of ``volume`` ``(B, C, X, Y, Z)`` along spatial ``axis``.

    Slices are batched (``batch_size`` per call), centre-padded with ``pad_value`` to ``min_size`` and a
    multiple of ``multiple`` (the network's size rule), and cropped back. Returns ``(B, C_out, X, Y, Z)``.
    """
    if not isinstance(volume, torch.Tensor) or volume.ndim != 5:
        got = tuple(volume.shape) if isinstance(volume, torch.Tensor) else type(volume).__name__
        raise ShapeError(f"volume must have shape (B, C, X, Y, Z), got {got}.")
    if not volume.is_floating_point():
        raise ValidationError(f"volume must be a floating-point tensor, got dtype {volume.dtype}.")
    if not bool(torch.isfinite(volume).all()):
        raise ValidationError("volume contains NaN or infinite values; replace them (torch.nan_to_num) first.")
    if axis not in (-3, -2, -1, 0, 1, 2):
        raise ValidationError(f"axis must be a spatial axis 0, 1 or 2 (or -3..-1), got {axis!r}.")
    a = 2 + (axis % 3)
    moved = volume.movedim(a, 1)  # (B, N, C, H, W)
    b, n, c = moved.shape[:3]
    slices = moved.reshape(b * n, c, *moved.shape[3:])
    padded, crop = pad_to(slices, multiple=multiple, min_size=min_size, value=pad_value)
    outs = []
    with torch.no_grad():
        for i in range(0, padded.shape[0], batch_size):
            outs.append(network(padded[i : i + batch_size])[crop])
    out = torch.cat(outs)
    return out.reshape(b, n, out.shape[1], *out.shape[2:]).movedim(1, a)
