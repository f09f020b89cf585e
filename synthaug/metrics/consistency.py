"""Inter-slice consistency of volumes made slice by slice.

A 2D generator applied to every slice can produce stripes across slices. We measure the mean
absolute difference between neighbouring voxels *across* slices and *within* slices; the ratio
through-plane / in-plane of a synthetic volume is compared with the same ratio of the real volume
(a ratio near 1 means no more striping than real anatomy has at that slice spacing).
"""

from __future__ import annotations

import torch

__all__ = ["neighbour_differences", "interslice_ratio"]


def neighbour_differences(volume: torch.Tensor, *, axis: int = 2, mask: torch.Tensor | None = None) -> tuple[float, float]:
    """(through-plane, in-plane) mean |difference| of neighbours for a (X, Y, Z) volume.

    ``mask`` (same shape, bool) restricts to pairs whose both voxels are inside.
    """
    v = volume.float().movedim(axis, -1)
    m = torch.ones_like(v, dtype=torch.bool) if mask is None else mask.movedim(axis, -1).bool()

    def diff(dim: int) -> float:
        a = v.narrow(dim, 1, v.shape[dim] - 1) - v.narrow(dim, 0, v.shape[dim] - 1)
        ok = m.narrow(dim, 1, v.shape[dim] - 1) & m.narrow(dim, 0, v.shape[dim] - 1)
        return float(a.abs()[ok].mean()) if bool(ok.any()) else float("nan")

    through = diff(2)
    inplane = 0.5 * (diff(0) + diff(1))
    return through, inplane


def interslice_ratio(volume: torch.Tensor, *, axis: int = 2, mask: torch.Tensor | None = None) -> float:
    """Through-plane / in-plane neighbour difference (higher = more striping across slices)."""
    through, inplane = neighbour_differences(volume, axis=axis, mask=mask)
    return through / max(inplane, 1e-12)
