"""Architecture names used in model cards -> the ``nn.Module`` class that builds them.

A lookup table (not an if/elif factory): adding an architecture is one line. Entries are
``"module:attribute"`` strings so importing this table imports no network code.
"""

from __future__ import annotations

import importlib

import torch.nn as nn

from synthaug._validate import closest
from synthaug.errors import WeightsError

__all__ = ["ARCHITECTURES", "build_network"]

ARCHITECTURES: dict[str, str] = {
    "context_generator": "synthaug.networks.context:ContextGenerator",
    "unet_generator": "synthaug.networks.unet_generator:UNetGenerator",
    "resnet_generator": "synthaug.networks.resnet_generator:ResNetGenerator",
    "spade_generator": "synthaug.networks.spade:SPADEGenerator",
    "segmentation_unet": "synthaug.networks.discriminators:SegmentationDiscriminator",
    "auto_context_unet": "synthaug.networks.auto_context:AutoContextGenerator",
    "style_swap_generator": "synthaug.networks.style:StyleSwapGenerator",
}


def build_network(architecture: str, arguments: dict) -> nn.Module:
    """Instantiate the network named in a model card with the card's arguments."""
    if architecture not in ARCHITECTURES:
        raise WeightsError(
            f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}.{closest(architecture, ARCHITECTURES)}"
        )
    module_name, attr = ARCHITECTURES[architecture].split(":")
    cls = getattr(importlib.import_module(module_name), attr)
    try:
        return cls(**arguments)
    except TypeError as exc:
        raise WeightsError(f"architecture {architecture!r} rejected the card's arguments {arguments}: {exc}") from exc
