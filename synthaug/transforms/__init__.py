"""The augmentation transforms.

Core (no MONAI/TorchIO needed): :class:`ContextTextureSynth` (array form with ``sample_params`` /
``apply``), elastic deformation helpers.

MONAI and TorchIO forms are imported lazily on first access, so ``import synthaug.transforms``
imports neither framework:

- ``RandContextTextureSynthd``, ``RandContextTextureSynth`` (MONAI)
- ``RandomContextTextureSynth`` (TorchIO)
"""

from __future__ import annotations

import importlib
from typing import Any

from synthaug.transforms.context_texture import ContextTextureParams, ContextTextureSynth

_LAZY = {
    "RandContextTextureSynthd": "synthaug.integrations.monai_transforms",
    "RandContextTextureSynth": "synthaug.integrations.monai_transforms",
    "RandomContextTextureSynth": "synthaug.integrations.torchio_transforms",
    "RandStyleSwapd": "synthaug.integrations.monai_transforms",
    "RandStyleSwap": "synthaug.integrations.monai_transforms",
    "RandomStyleSwap": "synthaug.integrations.torchio_transforms",
    "StyleSwap": "synthaug.transforms.style_swap",
    "StyleBank": "synthaug.transforms.style_swap",
    "StyleSwapParams": "synthaug.transforms.style_swap",
}

__all__ = ["ContextTextureParams", "ContextTextureSynth", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'synthaug.transforms' has no attribute {name!r}")
