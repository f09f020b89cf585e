"""Shared per-region statistics of one image under one label map: the input of every feature's ``compute``.

Every voxel gets the flat region index ``b * n_labels + l``; region sums are one ``index_add`` and histograms
one ``index_add`` over ``(b * n_labels + l) * bins + bin`` (hard, triangular or Gaussian-soft binning). Each
statistic is computed on first use and cached; nothing loops over samples or labels, nothing leaves the device.
"""

from __future__ import annotations

import math
from functools import cached_property

import torch

from synthaug.errors import ShapeError

__all__ = ["RegionStats"]


class RegionStats:
    """Shared, lazily computed per-region statistics handed to each feature's ``compute``.

    Built by :func:`synthaug.features.region.region_features` from validated inputs: ``image`` ``(B, 1, *spatial)`` float
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
