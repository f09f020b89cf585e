"""Random smooth elastic deformation, batched on the data's device, 2D and 3D.

Sampling is split from application: :func:`sample_displacement` draws a displacement field from an
explicit ``torch.Generator`` (random offsets on a coarse control grid, upsampled cubically so the field
is smooth), :func:`sample_displacements` one field per sample from each sample's own generator, upsampled
as one batch; :func:`warp` and :func:`warp_labels` apply a given field. The same field
deforms an image (linear) and its label map (nearest neighbour), so they stay consistent.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from synthaug._validate import check_positive
from synthaug.errors import ShapeError, ValidationError

__all__ = ["sample_displacement", "sample_displacements", "warp", "warp_labels", "identity_grid"]


def sample_displacement(
    spatial_shape: Sequence[int],
    *,
    batch: int = 1,
    control_points: int = 5,
    max_displacement: float = 6.0,
    generator: torch.Generator,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Displacement field ``(B, D, *spatial)`` in voxels (component d moves along spatial axis d).

    ``control_points`` random offsets per axis, uniform in ``[-max_displacement, max_displacement]``,
    smoothly interpolated (bicubic in 2D, trilinear in 3D) and bounded by ``max_displacement``;
    the border stays free to move. All ``batch`` fields come from the one ``generator``; for one
    generator per sample (per-sample replay) use :func:`sample_displacements`.
    """
    spatial_shape, dims = _check_field(spatial_shape, control_points, max_displacement)
    coarse = _coarse(batch, dims, control_points, max_displacement, generator, dtype)
    return _upsample(coarse.to(device=device if device is not None else generator.device), spatial_shape,
                     max_displacement)


def sample_displacements(
    spatial_shape: Sequence[int],
    generators: Sequence[torch.Generator],
    *,
    control_points: int = 5,
    max_displacement: float = 6.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """One displacement field per generator, ``(len(generators), D, *spatial)``.

    Sample ``i`` is exactly ``sample_displacement(..., batch=1, generator=generators[i])``: each sample's
    coarse control points come from its own generator (so a sample replays from its seed alone, whatever
    batch it is in); only those few numbers are drawn per sample, the upsampling to full resolution runs
    once for the whole batch on ``device`` (default: the first generator's device).
    """
    if not generators:
        raise ValidationError("sample_displacements needs at least one generator (one per sample).")
    spatial_shape, dims = _check_field(spatial_shape, control_points, max_displacement)
    target = device if device is not None else generators[0].device
    coarse = torch.cat([
        _coarse(1, dims, control_points, max_displacement, g, dtype).to(device=target) for g in generators
    ])
    return _upsample(coarse, spatial_shape, max_displacement)


def _check_field(spatial_shape: Sequence[int], control_points: int, max_displacement: float) -> tuple[tuple[int, ...], int]:
    spatial_shape = tuple(int(s) for s in spatial_shape)
    dims = len(spatial_shape)
    if dims not in (2, 3):
        raise ShapeError(f"spatial_shape must have 2 or 3 entries, got {spatial_shape}.")
    if control_points < 2:
        raise ValidationError(f"control_points must be >= 2, got {control_points}.")
    check_positive("max_displacement", max_displacement, allow_zero=True)
    return spatial_shape, dims


def _coarse(batch: int, dims: int, control_points: int, max_displacement: float, generator: torch.Generator,
            dtype: torch.dtype) -> torch.Tensor:
    """Control-point offsets ``(batch, dims, *(control_points,) * dims)`` on the generator's device."""
    shape = (batch, dims) + (control_points,) * dims
    return (torch.rand(shape, generator=generator, device=generator.device, dtype=dtype) * 2 - 1) * max_displacement


def _upsample(coarse: torch.Tensor, spatial_shape: tuple[int, ...], max_displacement: float) -> torch.Tensor:
    mode = "bicubic" if len(spatial_shape) == 2 else "trilinear"
    field = F.interpolate(coarse, size=spatial_shape, mode=mode, align_corners=True)
    return field.clamp(-max_displacement, max_displacement)  # bicubic may overshoot slightly


def identity_grid(spatial_shape: Sequence[int], *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Voxel coordinates ``(D, *spatial)`` (component d = index along axis d)."""
    axes = [torch.arange(s, device=device, dtype=dtype) for s in spatial_shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))


def _sampling_grid(disp: torch.Tensor) -> torch.Tensor:
    spatial = disp.shape[2:]
    dims = len(spatial)
    coords = identity_grid(spatial, device=disp.device, dtype=disp.dtype)[None] + disp  # (B, D, *sp)
    sizes = torch.tensor([max(s - 1, 1) for s in spatial], device=disp.device, dtype=disp.dtype)
    norm = coords / sizes.reshape(1, dims, *([1] * dims)) * 2 - 1
    # grid_sample wants (..., xyz) with x = last axis: reverse the component order.
    return norm.flip(1).movedim(1, -1)


def warp(image: torch.Tensor, disp: torch.Tensor, *, mode: str = "bilinear", padding_mode: str = "border") -> torch.Tensor:
    """Deform ``image`` ``(B, C, *spatial)`` with ``disp`` ``(B, D, *spatial)`` (pull-back sampling)."""
    if image.shape[0] != disp.shape[0] or image.shape[2:] != disp.shape[2:]:
        raise ShapeError(
            f"image {tuple(image.shape)} and displacement {tuple(disp.shape)} must share batch and spatial shape."
        )
    grid = _sampling_grid(disp.to(image.dtype) if image.is_floating_point() else disp)
    src = image if image.is_floating_point() else image.to(disp.dtype)
    out = F.grid_sample(src, grid, mode=mode, padding_mode=padding_mode, align_corners=True)
    return out if image.is_floating_point() else out.round().to(image.dtype)


def warp_labels(labels: torch.Tensor, disp: torch.Tensor) -> torch.Tensor:
    """Deform an integer label map ``(B, *spatial)`` or ``(B, 1, *spatial)`` with nearest neighbour."""
    squeeze = labels.ndim == disp.ndim - 1
    lab = labels[:, None] if squeeze else labels
    out = F.grid_sample(lab.to(disp.dtype), _sampling_grid(disp), mode="nearest", padding_mode="border", align_corners=True)
    out = out.round().to(labels.dtype)
    return out[:, 0] if squeeze else out
