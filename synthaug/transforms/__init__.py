"""The augmentation transforms (array forms; no MONAI/TorchIO needed).

- :class:`ContextTextureSynth` (ConText-GAN label map + texture features -> image), :class:`StyleSwap` (+
  :class:`StyleBank`), :class:`ModalityTranslate`, :class:`GaussianMixtureSynth` (the generator-free
  SynthSeg-style baseline), :class:`HeavyIntensityAugment` (SmaugLab's heavy intensity augmentation); each has an options record (``ContextTextureOptions`` ...) that declares its options
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
from synthaug.transforms.heavy_intensity import (
    HeavyIntensityAugment,
    HeavyIntensityOptions,
    HeavyIntensityParams,
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
from synthaug.transforms.simulated_mr import SimulatedMROptions, SimulatedMRParams, SimulatedMRSynth
from synthaug.transforms.style_swap import StyleBank, StyleSwap, StyleSwapOptions, StyleSwapParams

__all__ = [
    "ContextTextureOptions",
    "ContextTextureParams",
    "ContextTextureSynth",
    "GaussianMixtureOptions",
    "GaussianMixtureParams",
    "GaussianMixtureSynth",
    "HeavyIntensityAugment",
    "HeavyIntensityOptions",
    "HeavyIntensityParams",
    "ModalityTranslate",
    "ModalityTranslateOptions",
    "ModalityTranslateParams",
    "SimulatedMROptions",
    "SimulatedMRParams",
    "SimulatedMRSynth",
    "StyleBank",
    "StyleSwap",
    "StyleSwapOptions",
    "StyleSwapParams",
]

def __getattr__(name: str) -> Any:
    if name.startswith("Random"):
        home = "torchio"
    elif name.startswith("Rand") or name.endswith("d"):
        home = "monai"
    else:
        raise AttributeError(f"module 'synthaug.transforms' has no attribute {name!r}")
    raise AttributeError(
        f"module 'synthaug.transforms' has no attribute {name!r}; the MONAI and TorchIO forms are generated from the "
        f"transform registry and live in synthaug.integrations.monai / synthaug.integrations.torchio "
        f"(e.g. from synthaug.integrations.{home} import {name})"
    )
