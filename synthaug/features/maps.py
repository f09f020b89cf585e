"""Feature maps (ConText-GAN conditioning) and the 0..100 normalisation of feature values.

A feature map has shape ``(B, N_F, N_L, *spatial)``: for feature ``f`` and region ``l`` it holds
the region's value inside region ``l`` and 0 elsewhere. Flatten ``(N_F, N_L)`` with
``maps.flatten(1, 2)`` to feed a network that takes ``N_F * N_L`` channels. Memory grows with
``N_F * N_L * voxels``: mind it for 3D volumes with many labels.

>>> import torch
>>> labels = torch.tensor([[[0, 1], [1, 1]]])
>>> values = torch.tensor([[[10.0, 20.0]]])                    # (B=1, N_F=1, N_L=2)
>>> feature_maps(values, labels, n_labels=2)[0, 0]
tensor([[[10.,  0.],
         [ 0.,  0.]],
<BLANKLINE>
        [[ 0., 20.],
         [20., 20.]]])
>>> v = torch.tensor([[0.0], [5.0]])                             # (N_F=2, N_L=1): mean, entropy
>>> normalise_features(v, ("mean", "entropy"), value_range=(-1.0, 1.0), bins=32)
tensor([[ 50.],
        [100.]])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from synthaug.errors import ShapeError, ValidationError
from synthaug.features.checks import check_feature_names, check_histogram_options, check_label_map
from synthaug.features.registry import _REGISTRY, get_feature

__all__ = ["feature_maps", "normalise_features", "denormalise_features", "feature_bounds"]


def feature_maps(values: torch.Tensor, labels: torch.Tensor, *, n_labels: int) -> torch.Tensor:
    """Place each region's feature values inside that region: ``(B, N_F, N_L, *spatial)``.

    Args:
        values: ``(B, N_F, N_L)`` float (raw or normalised, as the network expects).
        labels: ``(B, *spatial)`` or ``(B, 1, *spatial)`` integer map with values in ``0..n_labels-1``.

    Differentiable w.r.t. ``values``; output dtype/device follow ``values``.
    """
    if not isinstance(values, torch.Tensor) or not values.is_floating_point():
        raise ValidationError(f"values must be a floating-point torch.Tensor, got {_describe(values)}.")
    labels = check_label_map(labels, n_labels=n_labels)
    if values.ndim != 3 or values.shape[0] != labels.shape[0] or values.shape[2] != n_labels:
        raise ShapeError(
            f"values must have shape (B, N_F, N_L) with B={labels.shape[0]} (the labels' batch) and "
            f"N_L=n_labels={n_labels}, got {tuple(values.shape)}."
        )
    if labels.device != values.device:
        raise ValidationError(
            f"labels are on {labels.device} but values are on {values.device}; move them together."
        )
    onehot = F.one_hot(labels, n_labels).movedim(-1, 1).to(values.dtype)  # (B, N_L, *spatial)
    view = (*values.shape, *([1] * (labels.ndim - 1)))
    return values.reshape(view) * onehot.unsqueeze(1)


def feature_bounds(
    names: Sequence[str],
    *,
    value_range: tuple[float, float] = (-1.0, 1.0),
    bins: int = 32,
    like: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature natural ranges as ``(lo, hi)`` tensors of shape ``(N_F, 1)`` (dtype/device of ``like``)."""
    pairs = _bound_pairs(tuple(names) if not isinstance(names, str) else names, tuple(value_range), bins)
    kw = {} if like is None else {"dtype": like.dtype, "device": like.device}
    bounds = torch.tensor(pairs, **kw)  # (N_F, 2)
    return bounds[:, :1], bounds[:, 1:]


def _bound_pairs(names: Sequence[str], value_range: tuple[float, float], bins: int) -> tuple[tuple[float, float], ...]:
    """The validated ``(lo, hi)`` pairs, memoised per (names, range, bins) of registered features (a transform
    asks for the same ones at every call)."""
    key = (names, value_range, bins, _registry_version())
    cached = _BOUNDS.get(key)
    if cached is None:
        checked = check_feature_names(names)
        vr = check_histogram_options(bins=bins, value_range=value_range)
        cached = _BOUNDS[key] = tuple(get_feature(n).range_for(value_range=vr, bins=bins) for n in checked)
    return cached


_BOUNDS: dict[tuple, tuple[tuple[float, float], ...]] = {}


def _registry_version() -> tuple[int, ...]:
    return tuple(id(spec) for spec in _REGISTRY.values())


def normalise_features(
    values: torch.Tensor,
    names: Sequence[str],
    *,
    value_range: tuple[float, float] = (-1.0, 1.0),
    bins: int = 32,
    clip: bool = False,
) -> torch.Tensor:
    """Map raw feature values ``(..., N_F, N_L)`` to 0..100 using each feature's natural range.

    mean: ``value_range``; std: ``[0, (hi - lo) / 2]``; entropy: ``[0, log2(bins)]``. Values outside
    the natural range map outside 0..100 unless ``clip=True``. Differentiable.
    """
    lo, hi = _bounds_for(values, names, value_range=value_range, bins=bins)
    out = (values - lo) * (100.0 / (hi - lo))
    return out.clamp(0.0, 100.0) if clip else out


def denormalise_features(
    values: torch.Tensor,
    names: Sequence[str],
    *,
    value_range: tuple[float, float] = (-1.0, 1.0),
    bins: int = 32,
) -> torch.Tensor:
    """Inverse of :func:`normalise_features` (without clipping): 0..100 -> raw feature units."""
    lo, hi = _bounds_for(values, names, value_range=value_range, bins=bins)
    return lo + values * ((hi - lo) / 100.0)


def _bounds_for(
    values: torch.Tensor, names: Sequence[str], *, value_range: tuple[float, float], bins: int
) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(values, torch.Tensor) or not values.is_floating_point():
        raise ValidationError(f"values must be a floating-point torch.Tensor, got {_describe(values)}.")
    names = check_feature_names(names)
    if values.ndim < 2 or values.shape[-2] != len(names):
        raise ShapeError(
            f"values must have shape (..., N_F, N_L) with N_F=len(names)={len(names)} ({list(names)}), "
            f"got {tuple(values.shape)}."
        )
    return feature_bounds(names, value_range=value_range, bins=bins, like=values)


def _describe(x: object) -> str:
    return f"dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
