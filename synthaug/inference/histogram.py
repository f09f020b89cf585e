"""Histogram matching in torch: map each sample's intensities onto a reference's distribution.

Used as the trivial translation baseline (the source image matched to target-domain histograms) and,
optionally and identically for every method, by the translation evaluation protocol (outputs matched
to the real target before scoring, as in the NEC paper).

The mapping is the classic quantile transform: a value at (mid-)rank quantile ``q`` of the source
(inside ``source_mask``) is sent to the reference's ``q``-quantile (linear interpolation between the
reference's order statistics, inside ``reference_mask``). Equal source values share one rank, so the
mapping is a monotone non-decreasing *function* of intensity; voxels outside ``source_mask`` are
mapped by the same function. Everything is batched (one sort and one ``searchsorted`` per tensor; no
loop over samples or voxels); masks of different sizes per sample are handled by padding with
``+inf``.

>>> import torch
>>> src = torch.arange(10.0).reshape(1, 10)
>>> ref = (torch.arange(10.0) * 3 + 100).reshape(1, 10)
>>> match_histogram(src, ref).tolist()
[[100.0, 103.0, 106.0, 109.0, 112.0, 115.0, 118.0, 121.0, 124.0, 127.0]]
"""

from __future__ import annotations

import torch

from synthaug.errors import ShapeError, ValidationError

__all__ = ["match_histogram", "quantile_positions"]


def _check(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValidationError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    if x.ndim < 2:
        raise ShapeError(
            f"{name} must be batched (B, ...) with one sample per row, got shape {tuple(x.shape)}. Use x[None]."
        )
    if not x.is_floating_point():
        raise ValidationError(f"{name} must be a floating-point tensor, got dtype {x.dtype}.")
    if not bool(torch.isfinite(x).all()):
        raise ValidationError(f"{name} contains NaN or infinite values; replace them (torch.nan_to_num) first.")


def _mask(mask: torch.Tensor | None, like: torch.Tensor, name: str) -> torch.Tensor:
    if mask is None:
        return torch.ones(like.shape[0], like[0].numel(), dtype=torch.bool, device=like.device)
    if not isinstance(mask, torch.Tensor):
        raise ValidationError(f"{name} must be a torch.Tensor, got {type(mask).__name__}.")
    if mask.shape != like.shape:
        if mask.numel() == like.numel() and mask.shape[0] == like.shape[0]:
            mask = mask.reshape(like.shape)
        else:
            raise ShapeError(f"{name} must have the shape of its image {tuple(like.shape)}, got {tuple(mask.shape)}.")
    flat = mask.reshape(like.shape[0], -1).to(device=like.device, dtype=torch.bool)
    empty = ~flat.any(dim=1)
    if bool(empty.any()):
        raise ValidationError(
            f"{name} is empty for sample(s) {empty.nonzero().flatten().tolist()}; histogram matching needs at least "
            "one voxel in each mask."
        )
    return flat


def quantile_positions(values: torch.Tensor, sorted_values: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Mid-rank quantiles in ``(0, 1)`` of ``values`` (B, N) within rows of ``sorted_values`` (B, M).

    Each row of ``sorted_values`` holds ``counts[b]`` finite values followed by ``+inf`` padding. Ties
    share the mean of their ranks, so equal values get equal quantiles.
    """
    left = torch.searchsorted(sorted_values, values.contiguous(), right=False)
    right = torch.searchsorted(sorted_values, values.contiguous(), right=True)
    n = counts.to(values.dtype)[:, None]
    left = torch.minimum(left.to(values.dtype), n)
    right = torch.minimum(right.to(values.dtype), n)
    return (left + right) / (2 * n)


def match_histogram(
    source: torch.Tensor,
    reference: torch.Tensor,
    *,
    source_mask: torch.Tensor | None = None,
    reference_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Map every sample of ``source`` ``(B, ...)`` onto the intensity distribution of ``reference`` ``(B, ...)``.

    Sample ``b`` of the source is matched to sample ``b`` of the reference (the reference may have any
    number of voxels per sample: pass a pooled reference as ``(B, M)``). Masks (bool, the shape of their
    image) restrict which voxels define each distribution. Returns a tensor shaped like ``source``.
    """
    _check(source, "source")
    _check(reference, "reference")
    if reference.shape[0] != source.shape[0]:
        raise ShapeError(
            f"source and reference must have the same batch size, got {source.shape[0]} and {reference.shape[0]}. "
            "Repeat a shared reference with reference.expand(B, ...)."
        )
    b = source.shape[0]
    dtype = torch.promote_types(source.dtype, torch.float32)
    src = source.reshape(b, -1).to(dtype)
    ref = reference.reshape(b, -1).to(dtype)
    sm = _mask(source_mask, source, "source_mask")
    rm = _mask(reference_mask, reference, "reference_mask")
    inf = torch.tensor(float("inf"), dtype=dtype, device=src.device)
    src_sorted = torch.where(sm, src, inf).sort(dim=1).values
    ref_sorted = torch.where(rm, ref, inf).sort(dim=1).values
    n_src, n_ref = sm.sum(dim=1), rm.sum(dim=1)
    q = quantile_positions(src, src_sorted, n_src)  # (B, N) in (0, 1]
    # Reference order statistic j sits at quantile (j + 0.5) / m; interpolate linearly between them.
    m = n_ref.to(dtype)[:, None]
    pos = (q * m - 0.5).clamp(min=0.0)
    pos = torch.minimum(pos, m - 1)
    lo = pos.floor().long()
    hi = torch.minimum(lo + 1, (n_ref - 1)[:, None])
    frac = pos - lo.to(dtype)
    v_lo = ref_sorted.gather(1, lo)
    v_hi = ref_sorted.gather(1, hi)
    out = v_lo + frac * (v_hi - v_lo)
    return out.reshape(source.shape).to(source.dtype)
