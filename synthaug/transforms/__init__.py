"""The augmentation transforms.

Core (no MONAI/TorchIO needed): :class:`ContextTextureSynth` (array form with ``sample_params`` /
``apply``), ``StyleSwap`` (+ ``StyleBank``), ``ModalityTranslate``, ``GaussianMixtureSynth`` (the generator-free
SynthSeg-style label-to-image baseline), elastic deformation helpers.

MONAI and TorchIO forms are imported lazily on first access, so ``import synthaug.transforms``
imports neither framework:

- ``RandContextTextureSynthd``, ``RandContextTextureSynth`` (MONAI)
- ``RandomContextTextureSynth`` (TorchIO)
- ``RandStyleSwapd``, ``RandStyleSwap`` (MONAI), ``RandomStyleSwap`` (TorchIO)
- ``ModalityTranslated`` and ``RandModalityTranslate`` (MONAI dictionary and array forms; the array class is
  ``synthaug.integrations.monai_transforms.ModalityTranslate``), ``RandomModalityTranslate`` (TorchIO, the class
  ``synthaug.integrations.torchio_transforms.ModalityTranslate``). ``synthaug.transforms.ModalityTranslate`` is
  the framework-free core.
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
    "ModalityTranslate": "synthaug.transforms.modality_translate",
    "ModalityTranslateParams": "synthaug.transforms.modality_translate",
    "ModalityTranslated": "synthaug.integrations.monai_transforms",
    "RandModalityTranslate": "synthaug.integrations.monai_transforms",
    "RandomModalityTranslate": "synthaug.integrations.torchio_transforms",
    "GaussianMixtureSynth": "synthaug.transforms.labels_to_image",
    "GaussianMixtureParams": "synthaug.transforms.labels_to_image",
}

__all__ = ["ContextTextureParams", "ContextTextureSynth", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'synthaug.transforms' has no attribute {name!r}")
