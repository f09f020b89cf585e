"""Region statistics calibration: move each region of a generated image to the requested features.

A frozen generator follows requested mean intensities well but synthesises texture (entropy) only
as far as it learned to. This optional, training-free layer corrects the output region by region:

- ``mean``: shift the region by (requested - measured) mean;
- ``std`` / ``entropy``: scale the region's deviations from its mean by a factor ``k``; for entropy,
  ``k = 2 ** (H_requested - H_measured)`` (the entropy of a Gaussian-like histogram grows by
  ``log2 k`` when its spread is scaled by ``k``), refined over a few iterations with the hard
  histogram entropy measured again.

Everything is vectorised over batch and regions (``index_add``/gather on the flat region index);
regions absent from a sample and the background (region 0, unless ``include_background``) are left
unchanged. Values are clamped to ``value_range`` at the end. Outputs are an *adjusted* generator
output: evaluation reports controllability with and without this layer.

Regions too small to carry a texture (fewer than ``min_texture_voxels`` voxels in a sample) get their mean
only: their spread is the generator's, because a standard deviation or histogram entropy measured on a handful
of voxels says nothing about texture and scaling it would amplify noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from synthaug.errors import ValidationError
from synthaug.features.checks import check_image_and_labels
from synthaug.features.maps import denormalise_features
from synthaug.features.stats import RegionStats

__all__ = ["calibrate_regions", "calibrate_with_stats"]

_SUPPORTED = ("mean", "std", "entropy")


def _entropy_bits(stats: RegionStats) -> torch.Tensor:
    p = stats.probabilities
    return -(p * torch.log2(p.clamp_min(1e-12))).sum(-1)


@torch.no_grad()
def calibrate_regions(
    image: torch.Tensor,
    labels: torch.Tensor,
    requested: torch.Tensor,
    *,
    names: Sequence[str],
    n_labels: int,
    bins: int = 32,
    value_range: tuple[float, float] = (-1.0, 1.0),
    iterations: int = 3,
    include_background: bool = False,
    max_scale: float = 4.0,
    min_texture_voxels: int = 0,
) -> torch.Tensor:
    """Adjust ``image`` (B, 1, *spatial) so each region's features approach ``requested``.

    ``requested`` is (B, N_F, N_L) in normalised 0..1 units for the features ``names`` (as the
    generator received them). Features other than mean/std/entropy are ignored.
    """
    names = tuple(names)
    if requested.ndim != 3 or requested.shape[1] != len(names) or requested.shape[2] != n_labels:
        raise ValidationError(
            f"requested must have shape (B, N_F={len(names)}, N_L={n_labels}), got {tuple(requested.shape)}."
        )
    image, labels = check_image_and_labels(image, labels, n_labels=n_labels)
    stats = RegionStats(image, labels, n_labels=n_labels, bins=bins, value_range=value_range, soft=False, bandwidth=None)
    return calibrate_with_stats(image, stats, requested, names=names, iterations=iterations,
                                include_background=include_background, max_scale=max_scale,
                                min_texture_voxels=min_texture_voxels)


@torch.no_grad()
def calibrate_with_stats(
    image: torch.Tensor,
    stats: RegionStats,
    requested: torch.Tensor,
    *,
    names: Sequence[str],
    iterations: int = 3,
    include_background: bool = False,
    max_scale: float = 4.0,
    min_texture_voxels: int = 0,
) -> torch.Tensor:
    """:func:`calibrate_regions` with the labels' region statistics already built (``stats``: hard histogram
    statistics of any image under the same labels, e.g. the input's from the feature measurement). No
    validation and no host round trip: the transforms' hot path. The region index and voxel counts are shared
    by every pass; each pass is one histogram, a few ``(B, N_L)`` operations and one gather of a per-region
    table back to the voxels."""
    names = tuple(names)
    if stats.soft:
        raise ValidationError("calibrate_with_stats needs hard-histogram statistics (soft=False).")
    n_labels, bins, value_range = stats.n_labels, stats.bins, stats.value_range
    raw = denormalise_features(requested * 100.0, names, value_range=value_range, bins=bins)  # raw units
    lo, hi = value_range
    out = image.clone()
    shape = out.shape
    keep = torch.ones(n_labels, dtype=torch.bool, device=image.device)
    if not include_background:
        keep[0] = False
    i_mean = names.index("mean") if "mean" in names else None
    i_std = names.index("std") if "std" in names else None
    i_ent = names.index("entropy") if "entropy" in names else None
    textured = stats.count >= min_texture_voxels  # (B, N_L): label-only, so the same in every pass
    for _ in range(max(1, iterations)):
        st = stats.with_image(out)
        active = st.present & keep  # (B, N_L)
        mean = st.mean
        target_mean = raw[:, i_mean] if i_mean is not None else mean
        scale = torch.ones_like(mean)
        if i_std is not None:
            sd = st.variance.clamp_min(0).sqrt()
            scale = raw[:, i_std] / sd.clamp_min(1e-6)
        elif i_ent is not None:
            scale = torch.pow(2.0, raw[:, i_ent] - _entropy_bits(st))
        scale = scale.clamp(1.0 / max_scale, max_scale)
        scale = torch.where(active & textured, scale, torch.ones_like(scale))
        target_mean = torch.where(active, target_mean, mean)
        flat = out.reshape(shape[0], -1)
        # one gather of a (B * N_L, 4) table instead of four gathers of (B, N_L) tensors
        table = torch.stack([target_mean, mean, scale, active.to(mean.dtype)], dim=-1).reshape(-1, 4)
        per_voxel = table[st.index].view(shape[0], -1, 4)
        new = (per_voxel[..., 0] + (flat - per_voxel[..., 1]) * per_voxel[..., 2]).clamp(lo, hi)
        out = torch.where(per_voxel[..., 3] > 0, new, flat).reshape(shape)  # untouched regions stay exact
    return out.to(image.dtype)
