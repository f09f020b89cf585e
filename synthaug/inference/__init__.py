"""Whole-volume inference helpers: sliding windows over patch networks, slice-wise 2D inference,
and histogram matching (the trivial translation baseline and an optional evaluation step)."""

from synthaug.inference.histogram import match_histogram, quantile_positions
from synthaug.inference.sliding_window import (
    WEIGHTINGS,
    pad_to,
    patch_starts,
    patch_weight,
    slice_inference,
    sliding_window_inference,
)

__all__ = [
    "WEIGHTINGS",
    "match_histogram",
    "quantile_positions",
    "pad_to",
    "patch_starts",
    "patch_weight",
    "slice_inference",
    "sliding_window_inference",
]
