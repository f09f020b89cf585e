"""Per-region texture features of an image under a label map, vectorised over batch and regions.

Every voxel gets the flat region index ``b * n_labels + l``; region sums are one ``index_add`` and
histograms one ``bincount``/``index_add`` over ``(b * n_labels + l) * bins + bin``. No Python loop
runs over samples or labels, and nothing leaves the input's device.

>>> import torch
>>> image = torch.tensor([[[[-1.0, -1.0], [0.0, 1.0]]]])        # (B=1, C=1, 2, 2)
>>> labels = torch.tensor([[[0, 0], [1, 1]]])                   # (B=1, 2, 2), region 2 absent
>>> f = region_features(image, labels, n_labels=3, names=("mean", "entropy"), bins=4)
>>> f.values
tensor([[[-1.0000,  0.5000,  0.0000],
         [ 0.0000,  1.0000,  0.0000]]])
>>> f.present
tensor([[ True,  True, False]])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from synthaug.errors import ShapeError, ValidationError
from synthaug.features.checks import (
    check_feature_names,
    check_histogram_options,
    check_image_and_labels,
    check_label_map,
)
from synthaug.features.maps import normalise_features
from synthaug.features.registry import FeatureSpec, get_feature, register_feature
from synthaug.features.stats import RegionStats

__all__ = [
    "RegionFeatures",
    "RegionStats",
    "region_features",
    "features_of",
    "check_label_map",
    "check_feature_names",
    "check_histogram_options",
    "check_image_and_labels",
]

DEFAULT_NAMES: tuple[str, ...] = ("mean", "std", "entropy")


@dataclass(frozen=True, eq=False)
class RegionFeatures:
    """Features of every region of every sample.

    Attributes:
        values: ``(B, N_F, N_L)`` in the image's dtype/device; absent regions hold 0.
        present: ``(B, N_L)`` bool, True where the region has at least one voxel.
        names: the feature names, in the order of dimension 1 of ``values``.
        value_range, bins: the histogram settings used (needed to normalise).
    """

    values: torch.Tensor
    present: torch.Tensor
    names: tuple[str, ...]
    value_range: tuple[float, float]
    bins: int

    def __getitem__(self, name: str) -> torch.Tensor:
        """The ``(B, N_L)`` values of feature ``name``."""
        if name not in self.names:
            raise ValidationError(
                f"feature {name!r} was not computed; computed features are {list(self.names)}."
            )
        return self.values[:, self.names.index(name)]

    def normalised(self) -> torch.Tensor:
        """``values`` mapped to 0..100 with :func:`synthaug.features.maps.normalise_features`."""
        return normalise_features(self.values, self.names, value_range=self.value_range, bins=self.bins)


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """sqrt with a zero (not infinite) gradient at 0."""
    pos = x > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, x, torch.ones_like(x))), torch.zeros_like(x))


def _entropy(stats: RegionStats) -> torch.Tensor:
    p = stats.probabilities
    pos = p > 0
    plogp = torch.where(pos, p * torch.log2(torch.where(pos, p, torch.ones_like(p))), torch.zeros_like(p))
    return 0.0 - plogp.sum(-1)  # 0.0 - x keeps +0.0 for single-bin and absent regions


def _gradient(stats: RegionStats) -> torch.Tensor:
    """Region mean of the voxel-wise RMS over axes of central differences (np.gradient semantics)."""
    img = stats.image[:, 0]
    sq = torch.zeros_like(img)
    for dim in range(1, img.ndim):  # 2 or 3 spatial axes, not samples or labels
        if img.shape[dim] >= 2:
            sq = sq + torch.gradient(img, dim=dim)[0].square()
    return stats.region_mean(_safe_sqrt(sq / (img.ndim - 1)))


def _half_width(value_range: tuple[float, float], bins: int) -> tuple[float, float]:
    return 0.0, (value_range[1] - value_range[0]) / 2


for _spec in (
    FeatureSpec("mean", lambda s: s.mean, True, lambda vr, b: vr, "mean intensity"),
    FeatureSpec("std", lambda s: _safe_sqrt(s.variance), True, _half_width, "population standard deviation"),
    FeatureSpec(
        "entropy", _entropy, True, lambda vr, b: (0.0, math.log2(b)), "intensity-histogram entropy in bits"
    ),
    FeatureSpec("gradient", _gradient, True, _half_width, "mean RMS central-difference gradient magnitude"),
):
    register_feature(_spec, overwrite=True)


# ----------------------------------------------------------------------------------------- entry point


def region_features(
    image: torch.Tensor,
    labels: torch.Tensor,
    *,
    n_labels: int,
    names: Sequence[str] = DEFAULT_NAMES,
    bins: int = 32,
    value_range: tuple[float, float] = (-1.0, 1.0),
    soft: bool = False,
    bandwidth: float | None = None,
) -> RegionFeatures:
    """Features of every region (0..n_labels-1, background included) of every sample.

    Args:
        image: ``(B, 1, *spatial)`` float, 2D or 3D spatial.
        labels: ``(B, *spatial)`` or ``(B, 1, *spatial)`` integer map with values in ``0..n_labels-1``.
        n_labels: number of regions (absent ones get 0 and ``present=False``).
        names: registered feature names (see :func:`synthaug.features.available_features`).
        bins, value_range: histogram over ``value_range`` (values outside are clamped) for ``entropy``.
        soft: differentiable histogram: linear interpolation to the two nearest bin centres, or,
            with ``bandwidth`` (intensity units), a Gaussian kernel over bin centres.
    """
    names = check_feature_names(names)
    vr = check_histogram_options(bins=bins, value_range=value_range, soft=soft, bandwidth=bandwidth)
    image, labels = check_image_and_labels(image, labels, n_labels=n_labels)
    stats = RegionStats(
        image, labels, n_labels=n_labels, bins=bins, value_range=vr, soft=soft, bandwidth=bandwidth
    )
    return features_of(stats, names)


def features_of(stats: RegionStats, names: Sequence[str]) -> RegionFeatures:
    """:func:`region_features` from statistics already built (no validation, no host round trip): the hot
    path of the generator transforms, which validate their inputs once per call and share ``stats``'s
    region index with the calibration (:meth:`RegionStats.with_image`)."""
    names = tuple(names)
    image, n_labels = stats.image, stats.n_labels
    columns = []
    for name in names:  # loop over features, not samples or labels
        spec: FeatureSpec = get_feature(name)
        out = spec.compute(stats)
        if tuple(out.shape) != (image.shape[0], n_labels):
            raise ShapeError(
                f"feature {name!r} returned shape {tuple(out.shape)}, expected (B, N_L) = "
                f"{(image.shape[0], n_labels)}. Fix its FeatureSpec.compute."
            )
        columns.append(out.to(image.dtype))
    return RegionFeatures(torch.stack(columns, dim=1), stats.present, names, stats.value_range, stats.bins)
