"""The built-in scenarios' names, descriptions and label spaces, declared once and importable without torch or
numpy (the command line lists them at start-up); :mod:`synthaug.data.scenarios` builds them."""

from __future__ import annotations

__all__ = ["LABEL_SPACES", "SCENARIO_DESCRIPTIONS", "SCENARIO_LABEL_SPACES", "scenario_names"]

LABEL_SPACES: tuple[str, ...] = ("superclass", "shared", "spine")

SCENARIO_DESCRIPTIONS: dict[str, str] = {
    "cross-modality": "train on CT A slabs, test on the lower half of MR C (CT -> MR); MR C all slices reported "
    "separately; the upper half of MR C is reserved for generator training",
    "cross-scanner": "train on CT A slabs, test on CT B (another CT scanner and protocol)",
    "in-domain": "train on CT A slabs, test on a held-out superior slab of CT A (gap between them)",
    "spine-cross-modality": "train on spine CT slabs (TPTBox test CT, vertebrae labelled L2-L4), test on the "
    "whole spine T2w MR (another subject, vertebrae labelled C5-C7) (CT -> MR, spine subregions)",
}
# Label spaces each scenario accepts; the first is its default.
SCENARIO_LABEL_SPACES: dict[str, tuple[str, ...]] = {
    "cross-modality": ("superclass", "shared"),
    "cross-scanner": ("superclass", "shared"),
    "in-domain": ("superclass", "shared"),
    "spine-cross-modality": ("spine",),
}


def scenario_names() -> tuple[str, ...]:
    return tuple(SCENARIO_DESCRIPTIONS)
