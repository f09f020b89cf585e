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
from functools import cached_property

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


class RegionStats:
    """Shared, lazily computed per-region statistics handed to each feature's ``compute``.

    Built by :func:`region_features` from validated inputs: ``image`` ``(B, 1, *spatial)`` float
    and ``labels`` ``(B, *spatial)`` int64 in ``0..n_labels-1``. Custom features should use
    :meth:`region_sum` / :meth:`region_mean` / :meth:`gather` to stay vectorised.
    """

    def __init__(
        self,
        image: torch.Tensor,
        labels: torch.Tensor,
        *,
        n_labels: int,
        bins: int,
        value_range: tuple[float, float],
        soft: bool,
        bandwidth: float | None,
    ) -> None:
        self.image, self.labels, self.n_labels = image, labels, n_labels
        self.bins, self.value_range, self.soft, self.bandwidth = bins, value_range, soft, bandwidth
        self.batch = image.shape[0]
        self.flat = image.reshape(self.batch, -1)  # (B, V)
        offsets = torch.arange(self.batch, device=image.device).unsqueeze(1) * n_labels
        self.index = (labels.reshape(self.batch, -1) + offsets).reshape(-1)  # (B*V,) region ids

    def with_image(self, image: torch.Tensor) -> RegionStats:
        """The statistics of another image ``(B, 1, *spatial)`` under the same labels and settings.

        The region index and the voxel counts depend only on the labels, so they are shared, not recomputed:
        the feature measurement of an input and the calibration passes of a generated image reuse one index.
        """
        if image.shape[0] != self.batch or image[0].numel() != self.flat.shape[1]:
            raise ShapeError(
                f"image {tuple(image.shape)} must have the batch and voxel count of the labels' statistics "
                f"({self.batch} x {self.flat.shape[1]})."
            )
        new = object.__new__(RegionStats)
        new.image, new.labels, new.n_labels = image, self.labels, self.n_labels
        new.bins, new.value_range, new.soft, new.bandwidth = self.bins, self.value_range, self.soft, self.bandwidth
        new.batch, new.index = self.batch, self.index
        new.flat = image.reshape(self.batch, -1)
        for name in ("count", "present"):  # label-only quantities (cached properties)
            if name in self.__dict__:
                value = self.__dict__[name]
                new.__dict__[name] = value.to(image.dtype) if name == "count" else value
        return new

    def rows(self, start: int, stop: int) -> RegionStats:
        """The statistics of samples ``start:stop`` (views of the index, counts and image; no recount): a chunked
        caller (the generator transforms calibrate slice chunks while they are in cache) shares one index."""
        n_vox = self.flat.shape[1]
        new = object.__new__(RegionStats)
        new.image, new.labels, new.n_labels = self.image[start:stop], self.labels[start:stop], self.n_labels
        new.bins, new.value_range, new.soft, new.bandwidth = self.bins, self.value_range, self.soft, self.bandwidth
        new.batch = stop - start
        new.flat = self.flat[start:stop]
        new.index = self.index[start * n_vox : stop * n_vox] - start * self.n_labels
        for name in ("count", "present"):
            if name in self.__dict__:
                new.__dict__[name] = self.__dict__[name][start:stop]
        return new

    def region_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum of per-voxel ``values`` (any shape with B*V elements) inside each region: ``(B, N_L)``."""
        flat = values.reshape(-1)
        out = flat.new_zeros(self.batch * self.n_labels).index_add(0, self.index, flat)
        return out.view(self.batch, self.n_labels)

    def region_mean(self, values: torch.Tensor) -> torch.Tensor:
        """Mean of per-voxel ``values`` inside each region (0 for absent regions): ``(B, N_L)``."""
        return self.region_sum(values) / self.count.clamp_min(1)

    def gather(self, per_region: torch.Tensor) -> torch.Tensor:
        """Broadcast a ``(B, N_L)`` per-region tensor back to voxels: ``(B, V)``."""
        return per_region.reshape(-1)[self.index].view(self.batch, -1)

    @cached_property
    def count(self) -> torch.Tensor:
        """Voxels per region, ``(B, N_L)`` in the image dtype."""
        n = torch.bincount(self.index, minlength=self.batch * self.n_labels)
        return n.view(self.batch, self.n_labels).to(self.image.dtype)

    @cached_property
    def present(self) -> torch.Tensor:
        return self.count > 0

    @cached_property
    def mean(self) -> torch.Tensor:
        return self.region_mean(self.flat)

    @cached_property
    def variance(self) -> torch.Tensor:
        """Population variance, two-pass (subtract the region mean first) for accuracy."""
        return self.region_mean((self.flat - self.gather(self.mean)).square())

    @cached_property
    def histogram(self) -> torch.Tensor:
        """``(B, N_L, bins)`` voxel mass per bin over ``value_range`` (values clamped into it)."""
        lo, hi = self.value_range
        x = self.flat.clamp(lo, hi)
        scaled = (x - lo) * (self.bins / (hi - lo))  # bin coordinate, bin k covers [k, k+1)
        size = self.batch * self.n_labels * self.bins
        base = (self.index * self.bins).view(self.batch, -1)
        if not self.soft:
            k = scaled.detach().floor().long().clamp_(0, self.bins - 1)
            hist = torch.bincount((base + k).reshape(-1), minlength=size).to(self.image.dtype)
        elif self.bandwidth is None:
            hist = _triangular_histogram(scaled - 0.5, base, self.bins, size)
        else:
            hist = _gaussian_histogram(
                scaled - 0.5, base, self.bins, size, self.bandwidth * self.bins / (hi - lo)
            )
        return hist.view(self.batch, self.n_labels, self.bins)

    @cached_property
    def probabilities(self) -> torch.Tensor:
        return self.histogram / self.count.clamp_min(1).unsqueeze(-1)


def _triangular_histogram(t: torch.Tensor, base: torch.Tensor, bins: int, size: int) -> torch.Tensor:
    """Linear interpolation of each voxel to the two nearest bin centres (``t`` in centre units)."""
    k0 = t.detach().floor()
    frac = t - k0  # differentiable; the floor is piecewise constant
    k0 = k0.long()
    i0 = (base + k0.clamp(0, bins - 1)).reshape(-1)
    i1 = (base + (k0 + 1).clamp(0, bins - 1)).reshape(-1)
    hist = t.new_zeros(size).index_add(0, i0, (1 - frac).reshape(-1))
    return hist.index_add(0, i1, frac.reshape(-1))


def _gaussian_histogram(
    t: torch.Tensor, base: torch.Tensor, bins: int, size: int, sigma: float
) -> torch.Tensor:
    """Each voxel spreads unit mass over bin centres with a Gaussian of width ``sigma`` (in bins).

    Only centres within ``3 sigma`` of the nearest one are visited (window of ``2K+1`` bins); the
    weights are a softmax over the valid centres, so each voxel contributes exactly 1 and tiny
    bandwidths do not underflow to 0/0.
    """
    half = min(bins - 1, math.ceil(3.0 * sigma))
    offsets = torch.arange(-half, half + 1, device=t.device)
    k = t.detach().round().long().clamp(0, bins - 1).unsqueeze(-1) + offsets  # (B, V, W)
    valid = (k >= 0) & (k < bins)
    logits = (-0.5 * ((t.unsqueeze(-1) - k) / sigma).square()).masked_fill(~valid, float("-inf"))
    weights = torch.softmax(logits, dim=-1)
    idx = (base.unsqueeze(-1) + k.clamp(0, bins - 1)).reshape(-1)
    return t.new_zeros(size).index_add(0, idx, weights.reshape(-1))


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
