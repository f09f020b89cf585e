"""Validation of the feature code's inputs: feature names, histogram options, label maps, image/label pairs.

Shared by :mod:`synthaug.features.region` (computing features) and :mod:`synthaug.features.maps` (feature maps
and normalisation), so neither needs the other to check its arguments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from synthaug._validate import check_image, check_labels, check_positive
from synthaug.errors import LabelError, ShapeError, ValidationError
from synthaug.features.registry import get_feature

__all__ = ["check_feature_names", "check_histogram_options", "check_label_map", "check_image_and_labels"]

_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def check_feature_names(names: Sequence[str]) -> tuple[str, ...]:
    """A non-empty tuple of distinct registered feature names (unknown names raise with a suggestion)."""
    if isinstance(names, str):
        raise ValidationError(
            f"names must be a sequence of feature names, got the string {names!r}; use ({names!r},)."
        )
    names = tuple(names)
    if not names:
        raise ValidationError("names must hold at least one feature name, e.g. ('mean', 'entropy').")
    if len(set(names)) != len(names):
        raise ValidationError(f"names must not repeat a feature, got {list(names)}.")
    for name in names:
        get_feature(name)
    return names


def check_histogram_options(
    *, bins: int, value_range: Sequence[float], soft: bool = True, bandwidth: float | None = None
) -> tuple[float, float]:
    """Validate ``bins`` / ``value_range`` / ``bandwidth``; returns ``value_range`` as a float pair."""
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ValidationError(f"bins must be an integer >= 2, got {bins!r}.")
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValidationError(
            f"value_range must be a pair (low, high) of numbers, got {value_range!r}."
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValidationError(
            f"value_range must be finite with low < high, got {value_range!r}, e.g. (-1.0, 1.0)."
        )
    if bandwidth is not None:
        if not soft:
            raise ValidationError(
                "bandwidth only applies to soft histograms; pass soft=True or bandwidth=None."
            )
        check_positive("bandwidth", float(bandwidth))
    return lo, hi


def check_label_map(labels: torch.Tensor, *, n_labels: int, name: str = "labels") -> torch.Tensor:
    """Validate a ``(B, *spatial)`` or ``(B, 1, *spatial)`` label map with values in ``0..n_labels-1``.

    Returns it as ``(B, *spatial)`` int64. A 4-D map with size 1 in dimension 1 is read as
    ``(B, 1, H, W)``; otherwise 4-D is ``(B, D, H, W)``.
    """
    if isinstance(n_labels, bool) or not isinstance(n_labels, int) or n_labels < 1:
        raise ValidationError(f"n_labels must be an integer >= 1 (background 0 counts), got {n_labels!r}.")
    if not isinstance(labels, torch.Tensor) or labels.dtype not in _INTEGER_DTYPES:
        labels = check_labels(labels, name, allow_empty=True)  # floats with whole numbers, bool; else raises
    labels = (
        labels.long()
    )  # integer maps skip check_labels' full torch.unique: the range check below suffices
    if labels.ndim == 5 or (labels.ndim == 4 and labels.shape[1] == 1):
        if labels.shape[1] != 1:
            raise ShapeError(
                f"{name} with 5 dimensions must be (B, 1, D, H, W), got shape {tuple(labels.shape)}."
            )
        labels = labels[:, 0]
    if labels.ndim not in (3, 4):
        raise ShapeError(
            f"{name} must be (B, *spatial) or (B, 1, *spatial) with 2 or 3 spatial dimensions, got shape "
            f"{tuple(labels.shape)}. Add the batch dimension with {name}[None] if it is missing."
        )
    bad = (labels < 0) | (labels >= n_labels)
    if bool(bad.any()):
        values = torch.unique(labels[bad]).tolist()
        raise LabelError(
            f"{name} holds value(s) {values[:10]}{' ...' if len(values) > 10 else ''} outside 0..{n_labels - 1} "
            f"(n_labels={n_labels}; background 0 is a region). Pass n_labels = largest label + 1 or remap the labels."
        )
    return labels


def check_image_and_labels(
    image: torch.Tensor, labels: torch.Tensor, *, n_labels: int, name: str = "image"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a ``(B, 1, *spatial)`` image against its label map; returns (image, (B, *spatial) int64)."""
    check_image(image, name, batched=True, channels=1)
    labels = check_label_map(labels, n_labels=n_labels)
    if labels.device != image.device:
        raise ValidationError(
            f"labels are on {labels.device} but {name} is on {image.device}; move them together."
        )
    if labels.shape[0] != image.shape[0]:
        raise ShapeError(
            f"{name} and labels must share the batch size, got {tuple(image.shape)} and {tuple(labels.shape)}."
        )
    if tuple(image.shape[2:]) != tuple(labels.shape[1:]):
        raise ShapeError(
            f"{name} {tuple(image.shape)} and labels {tuple(labels.shape)} must share their spatial shape "
            f"({tuple(image.shape[2:])} vs {tuple(labels.shape[1:])}). Resample the labels onto the image grid "
            "(nearest-neighbour) first."
        )
    return image, labels
