"""Gradient-based losses: normalized gradient fields (NEC), gradient difference (ResGAN), TV.

All functions take ``(B, C, *spatial)`` images with 2 or 3 spatial dimensions (inferred from
``ndim``); differences are in voxel units (no spacing).

>>> import torch
>>> s = torch.rand(1, 1, 16, 16)
>>> bool(torch.isclose(ngf_loss(s, s), ngf_loss(s, -s)))
True
>>> bool(gradient_difference_loss(s, s + 3.0) < 1e-10)
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from synthaug._validate import check_choice, check_positive
from synthaug.errors import ShapeError, ValidationError

__all__ = [
    "spatial_gradient",
    "normalized_gradient_field",
    "ngf_loss",
    "gradient_difference_loss",
    "total_variation_loss",
]

DIFFERENCES: tuple[str, ...] = ("central", "forward")


def _check_image(image: torch.Tensor, name: str, *, channels: int | None = None) -> int:
    if not isinstance(image, torch.Tensor):
        raise ValidationError(f"{name} must be a torch.Tensor, got {type(image).__name__}.")
    if image.ndim not in (4, 5):
        raise ShapeError(f"{name} must have shape (B, C, H, W) or (B, C, D, H, W), got {tuple(image.shape)}.")
    if channels is not None and image.shape[1] != channels:
        raise ShapeError(
            f"{name} must have {channels} channel(s) in dimension 1, got shape {tuple(image.shape)}."
        )
    if not image.is_floating_point():
        raise ValidationError(f"{name} must be a floating-point tensor, got dtype {image.dtype}.")
    return image.ndim - 2


def spatial_gradient(image: torch.Tensor, *, differences: str = "central") -> torch.Tensor:
    """Same-size finite differences ``(B, C, D, *spatial)``, axis order as in the tensor (D, H, W).

    ``"central"``: ``(I[i+1] - I[i-1]) / 2`` with edge replication (one-sided halves at borders);
    ``"forward"``: ``I[i+1] - I[i]``, 0 on the last slice of each axis.
    """
    dims = _check_image(image, "image")
    check_choice("differences", differences, DIFFERENCES)
    padded = F.pad(image, [1] * (2 * dims), mode="replicate")
    n = [image.shape[2 + a] for a in range(dims)]
    grads = []
    for a in range(dims):
        hi = [slice(None), slice(None)] + [slice(1, 1 + n[k]) for k in range(dims)]
        lo = list(hi)
        hi[2 + a] = slice(2, 2 + n[a])
        if differences == "central":
            lo[2 + a] = slice(0, n[a])
            grads.append(0.5 * (padded[tuple(hi)] - padded[tuple(lo)]))
        else:
            grads.append(padded[tuple(hi)] - padded[tuple(lo)])
    return torch.stack(grads, dim=2)


def normalized_gradient_field(
    image: torch.Tensor, *, eps: float = 0.15, differences: str = "central"
) -> torch.Tensor:
    """NGF ``n = grad I / (|grad I| + eps)`` of a one-channel image: ``(B, D, *spatial)``.

    ``eps`` (in intensity units per voxel) suppresses noise: gradients much weaker than ``eps``
    give ``n ~ 0``, strong edges give unit vectors. Flat regions have a zero-norm gradient whose
    norm derivative torch defines as 0, so gradients stay finite.
    """
    _check_image(image, "image", channels=1)
    check_positive("eps", float(eps))
    g = spatial_gradient(image, differences=differences)[:, 0]
    norm = torch.linalg.vector_norm(g, dim=1, keepdim=True)
    return g / (norm + eps)


def ngf_loss(
    source: torch.Tensor,
    output: torch.Tensor,
    *,
    eps: float = 0.15,
    mask: torch.Tensor | None = None,
    differences: str = "central",
) -> torch.Tensor:
    """NGF edge-alignment loss: mean over voxels of ``1 - 0.5 * <n(source), n(output)>^2``.

    The squared inner product ignores the sign of edges, so contrast inversions (CT -> MR) are
    free; the loss falls as edges of ``output`` align with those of ``source``. ``mask``
    (``(B, *S)`` or ``(B, 1, *S)``, bool or weights) restricts the mean to its support.
    """
    ns = normalized_gradient_field(source, eps=eps, differences=differences)
    no = normalized_gradient_field(output, eps=eps, differences=differences)
    if ns.shape != no.shape:
        raise ShapeError(
            f"source and output must have the same shape, got {tuple(source.shape)} and {tuple(output.shape)}."
        )
    per_voxel = 1.0 - 0.5 * (ns * no).sum(dim=1) ** 2
    if mask is None:
        return per_voxel.mean()
    m = mask[:, 0] if mask.ndim == source.ndim else mask
    if tuple(m.shape) != tuple(per_voxel.shape):
        raise ShapeError(
            f"mask must have shape (B, *spatial) or (B, 1, *spatial) matching source {tuple(source.shape)}, "
            f"got {tuple(mask.shape)}."
        )
    w = m.to(per_voxel.dtype)
    return (per_voxel * w).sum() / w.sum().clamp_min(torch.finfo(w.dtype).tiny)


def _forward_diffs(image: torch.Tensor, dims: int) -> list[torch.Tensor]:
    return [torch.diff(image, dim=2 + a) for a in range(dims)]


def gradient_difference_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gradient difference loss (Mathieu et al.; ResGAN): ``sum_d mean((|d_d target| - |d_d pred|)^2)``.

    Forward differences inside the image along every spatial axis ``d``; zero for identical
    images and for images that differ by a constant.
    """
    dims = _check_image(pred, "pred")
    _check_image(target, "target")
    if pred.shape != target.shape:
        raise ShapeError(
            f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}."
        )
    terms = [
        ((gt.abs() - gp.abs()) ** 2).mean()
        for gp, gt in zip(_forward_diffs(pred, dims), _forward_diffs(target, dims), strict=True)
    ]
    return torch.stack(terms).sum()


def total_variation_loss(image: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation: ``sum_d mean(|I[i+1] - I[i]|)`` along every spatial axis."""
    dims = _check_image(image, "image")
    return torch.stack([d.abs().mean() for d in _forward_diffs(image, dims)]).sum()
