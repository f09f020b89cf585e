"""The augmentation transforms (array forms; no MONAI/TorchIO needed).

- :class:`ContextTextureSynth` (ConText-GAN label map + texture features -> image), :class:`StyleSwap` (+
  :class:`StyleBank`), :class:`ModalityTranslate`, :class:`GaussianMixtureSynth` (the generator-free
  SynthSeg-style baseline); each has an options record (``ContextTextureOptions`` ...) that declares its options
  once, ``sample_params`` / a pure ``apply`` / a batched ``apply_batch``;
- elastic deformation helpers (:mod:`synthaug.transforms.elastic`).

The MONAI and TorchIO faces are generated from the transform registry (:mod:`synthaug.recipes.registry`) and
live in :mod:`synthaug.integrations.monai` (``RandContextTextureSynthd``, ``RandStyleSwapd``,
``ModalityTranslated``, ``RandGaussianMixtureSynthd`` ...) and :mod:`synthaug.integrations.torchio`
(``RandomContextTextureSynth`` ...).
"""

from __future__ import annotations

from typing import Any

from synthaug.transforms.context_texture import (
    ContextTextureOptions,
    ContextTextureParams,
    ContextTextureSynth,
)
from synthaug.transforms.labels_to_image import (
    GaussianMixtureOptions,
    GaussianMixtureParams,
    GaussianMixtureSynth,
)
from synthaug.transforms.modality_translate import (
    ModalityTranslate,
    ModalityTranslateOptions,
    ModalityTranslateParams,
)
from synthaug.transforms.style_swap import StyleBank, StyleSwap, StyleSwapOptions, StyleSwapParams

__all__ = [
    "ContextTextureOptions",
    "ContextTextureParams",
    "ContextTextureSynth",
    "GaussianMixtureOptions",
    "GaussianMixtureParams",
    "GaussianMixtureSynth",
    "ModalityTranslate",
    "ModalityTranslateOptions",
    "ModalityTranslateParams",
    "StyleBank",
    "StyleSwap",
    "StyleSwapOptions",
    "StyleSwapParams",
]

def __getattr__(name: str) -> Any:
    from synthaug.recipes.registry import declarations  # the faces' names are derived from the registry

    for decl in declarations():
        home = "monai" if name in (decl.monai, decl.monai_dict) else "torchio" if name == decl.torchio else None
        if home is not None:
            raise AttributeError(
                f"{name} lives in synthaug.integrations.{home} (generated from the transform registry): "
                f"from synthaug.integrations.{home} import {name}"
            )
    raise AttributeError(f"module 'synthaug.transforms' has no attribute {name!r}")
