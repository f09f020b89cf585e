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
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from synthaug.errors import ValidationError
from synthaug.features.maps import denormalise_features
from synthaug.features.region import RegionStats, check_image_and_labels

__all__ = ["calibrate_regions"]

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
    raw = denormalise_features(requested * 100.0, names, value_range=value_range, bins=bins)  # raw units
    lo, hi = value_range
    out = image.clone()
    shape = out.shape
    keep = torch.ones(n_labels, dtype=torch.bool, device=image.device)
    if not include_background:
        keep[0] = False

    def stats_of(x: torch.Tensor) -> RegionStats:
        return RegionStats(x, labels, n_labels=n_labels, bins=bins, value_range=value_range, soft=False, bandwidth=None)

    for _ in range(max(1, iterations)):
        st = stats_of(out)
        active = st.present & keep  # (B, N_L)
        mean = st.mean
        target_mean = raw[:, names.index("mean")] if "mean" in names else mean
        scale = torch.ones_like(mean)
        if "std" in names:
            sd = st.variance.clamp_min(0).sqrt()
            scale = raw[:, names.index("std")] / sd.clamp_min(1e-6)
        elif "entropy" in names:
            scale = torch.pow(2.0, raw[:, names.index("entropy")] - _entropy_bits(st))
        scale = scale.clamp(1.0 / max_scale, max_scale)
        scale = torch.where(active, scale, torch.ones_like(scale))
        target_mean = torch.where(active, target_mean, mean)
        flat = out.reshape(shape[0], -1)
        new = (st.gather(target_mean) + (flat - st.gather(mean)) * st.gather(scale)).clamp(lo, hi)
        out = torch.where(st.gather(active), new, flat).reshape(shape)  # untouched regions stay exact
    return out.to(image.dtype)
