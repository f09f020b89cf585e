"""The transform registry: each synthaug transform declared once, every face derived from its entry.

A :class:`TransformDecl` names a transform for recipes (``"context_texture"``), points to its array form
(the core class, whose ``Options`` record declares every option once) and gives the names of its MONAI and
TorchIO faces. From that one entry:

- recipes read ``{"name": ..., "options": {...}}`` into the core's options record
  (:meth:`TransformDecl.build`; the recipe's own ``deform`` block replaces the core's deformation options);
- :mod:`synthaug.integrations.monai` generates ``Rand<Core>`` / ``Rand<Core>d`` (or the names given here);
- :mod:`synthaug.integrations.torchio` generates ``Random<Core>``.

Adding a transform (see docs/ARCHITECTURE.md, "How to add a transform"): write the core class with its
options record in ``synthaug/transforms/``, add one :class:`TransformDecl` to :data:`DECLARATIONS`, add its
tests. Plug-ins outside synthaug call :func:`register_transform`; the framework faces of a plug-in are made
with ``synthaug.integrations.monai.make_faces(decl)`` / ``synthaug.integrations.torchio.make_face(decl)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from synthaug._validate import closest
from synthaug.errors import ValidationError
from synthaug.transforms.context_texture import ContextTextureSynth
from synthaug.transforms.heavy_intensity import HeavyIntensityAugment
from synthaug.transforms.labels_to_image import GaussianMixtureSynth
from synthaug.transforms.modality_translate import ModalityTranslate
from synthaug.transforms.options import Options, OptionsTransform
from synthaug.transforms.simulated_mr import SimulatedMRSynth
from synthaug.transforms.style_swap import StyleSwap

__all__ = [
    "DEFORM_OPTIONS",
    "TransformDecl",
    "DECLARATIONS",
    "register_transform",
    "unregister_transform",
    "get_transform",
    "transform_names",
    "declarations",
]

#: The core options a recipe does not take: its ``deform`` block draws the deformation for every transform.
DEFORM_OPTIONS: tuple[str, ...] = ("deform", "control_points", "max_displacement")

Inputs = Literal["image_label", "image"]


@dataclass(frozen=True)
class TransformDecl:
    """One transform, declared once.

    Attributes:
        name: recipe name (letters, digits, ``_``).
        core: the array form (an :class:`~synthaug.transforms.options.OptionsTransform` subclass).
        family: model-card family of its weights (None: generator-free).
        description: one line for listings.
        monai: MONAI array-form name (default ``Rand<Core>``); the dictionary form is ``monai_dict``
            (default ``<monai>d``).
        torchio: TorchIO random-transform name (default ``Random<Core>``).
    """

    name: str
    core: type[OptionsTransform]
    family: str | None = None
    description: str = ""
    monai: str = ""
    monai_dict: str = ""
    torchio: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValidationError(f"transform name must be letters, digits and '_', got {self.name!r}.")
        if not (isinstance(self.core, type) and issubclass(self.core, OptionsTransform)):
            raise ValidationError(f"transform {self.name!r}: core must be an OptionsTransform subclass, got {self.core!r}.")
        core = self.core.__name__
        object.__setattr__(self, "monai", self.monai or f"Rand{core}")
        object.__setattr__(self, "monai_dict", self.monai_dict or f"{self.monai}d")
        object.__setattr__(self, "torchio", self.torchio or f"Random{core}")

    @property
    def inputs(self) -> Inputs:
        """``"image_label"`` (reads the label map, may return a deformed one) or ``"image"`` (image only; labels
        pass untouched): declared by the core (``reads_labels``)."""
        return "image_label" if self.core.reads_labels else "image"

    @property
    def options(self) -> type[Options]:
        """The core's options record (the one declaration of the options)."""
        return self.core.Options

    @property
    def recipe_options(self) -> tuple[str, ...]:
        """Option names a recipe may give (every core option except the deformation ones)."""
        return tuple(n for n in self.options.names() if n not in DEFORM_OPTIONS)

    def check_recipe_options(self, options: Mapping[str, Any], *, where: str) -> None:
        """Validate a recipe's ``options`` object against the record (names and values), without building."""
        for k in options:
            if k in DEFORM_OPTIONS or k == "prob":
                raise ValidationError(
                    f"{where}: {k!r} is set by the recipe itself; use the transform's 'probability' and its "
                    "'deform' block instead."
                )
        try:
            self.options.build(dict(options), owner=f"transform {self.name!r}")
        except ValidationError as exc:
            raise ValidationError(f"{where}: {exc}") from None

    def build(self, options: Mapping[str, Any]) -> OptionsTransform:
        """The core transform for a recipe: always applies (``prob=1``), no own deformation."""
        deform_off = {"deform": False} if "deform" in self.options.names() else {}
        return self.core(prob=1.0, **deform_off, **dict(options))


DECLARATIONS: tuple[TransformDecl, ...] = (
    TransformDecl("context_texture", ContextTextureSynth, family="context",
                  description="ConText-GAN: label map + texture features -> image (synthaug.transforms.ContextTextureSynth)"),
    TransformDecl("style_swap", StyleSwap, family="style",
                  description="per-organ style of a style-bank patient -> image (synthaug.transforms.StyleSwap; bank: a folder)"),
    TransformDecl("modality_translate", ModalityTranslate, family="translate",
                  monai_dict="ModalityTranslated",
                  description="source modality -> target modality, labels untouched (synthaug.transforms.ModalityTranslate)"),
    TransformDecl("gaussian_mixture", GaussianMixtureSynth,
                  description="SynthSeg-style random Gaussian mixture label map -> image, no generator, optional "
                  "acquisition-resolution simulation (synthaug.transforms.GaussianMixtureSynth)"),
    TransformDecl("heavy_intensity", HeavyIntensityAugment,
                  description="SmaugLab's heavy non-linear intensity chain (inversion, histogram equalisation, "
                  "per-label redistribution, edges, random convolution, gamma, remaps, low resolution, bias), "
                  "labels untouched (synthaug.transforms.heavy_intensity.HeavyIntensityAugment)"),
    TransformDecl("simulated_mr", SimulatedMRSynth,
                  description="abdominal label map -> SIMULATED MR (physics prior: literature T1/T2/PD, spin echo and "
                  "in/opposed phase; synthaug.transforms.SimulatedMRSynth), no generator"),
)

_REGISTRY: dict[str, TransformDecl] = {d.name: d for d in DECLARATIONS}


def register_transform(decl: TransformDecl, *, replace: bool = False) -> TransformDecl:
    """Make a plug-in transform usable in recipes under ``decl.name``."""
    if not isinstance(decl, TransformDecl):
        raise ValidationError(f"register_transform takes a TransformDecl, got {type(decl).__name__}.")
    if decl.name in _REGISTRY and not replace:
        raise ValidationError(f"a transform named {decl.name!r} is already registered; pass replace=True to override it.")
    _REGISTRY[decl.name] = decl
    return decl


def unregister_transform(name: str) -> None:
    if any(d.name == name for d in DECLARATIONS):
        raise ValidationError(f"{name!r} is a built-in transform and cannot be unregistered.")
    _REGISTRY.pop(name, None)


def transform_names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def declarations() -> tuple[TransformDecl, ...]:
    """Every registered transform (built-ins first, in declaration order)."""
    return tuple(_REGISTRY.values())


def get_transform(name: str) -> TransformDecl:
    """The entry for ``name``; an unknown name raises naming the known ones and the closest."""
    if name not in _REGISTRY:
        raise ValidationError(
            f"unknown transform {name!r}; registered transforms: {list(transform_names())}.{closest(str(name), _REGISTRY)}"
        )
    return _REGISTRY[name]
