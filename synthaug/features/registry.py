"""A small registry of named per-region features (no string if/elif factories).

Each feature is a typed :class:`FeatureSpec`: its ``compute`` receives the shared, lazily computed
:class:`synthaug.features.stats.RegionStats` of one call and returns a ``(B, N_L)`` tensor; its
``natural_range`` says which interval maps to 0..100 when features are normalised for
controllability (see :func:`synthaug.features.maps.normalise_features`).

The built-in features (``mean``, ``std``, ``entropy``, ``gradient``) are registered by
:mod:`synthaug.features.region`, which ``import synthaug.features`` always loads.

>>> from synthaug.features import available_features, get_feature
>>> "entropy" in available_features()
True
>>> get_feature("entropy").range_for(value_range=(-1.0, 1.0), bins=32)
(0.0, 5.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from synthaug._validate import closest
from synthaug.errors import ValidationError

if TYPE_CHECKING:
    from synthaug.features.stats import RegionStats

__all__ = [
    "FeatureSpec",
    "NaturalRange",
    "register_feature",
    "unregister_feature",
    "get_feature",
    "available_features",
]

#: ``(lo, hi)`` fixed, or ``f(value_range, bins) -> (lo, hi)``.
NaturalRange = tuple[float, float] | Callable[[tuple[float, float], int], tuple[float, float]]


@dataclass(frozen=True)
class FeatureSpec:
    """One named per-region feature.

    Attributes:
        name: registry key, e.g. ``"entropy"``.
        compute: ``compute(stats) -> (B, N_L)`` tensor in the image dtype/device; absent regions
            must come out as 0. Must be vectorised over batch and regions.
        differentiable: gradients w.r.t. the image are meaningful when computed with ``soft=True``
            (the texture-control loss accepts only such features).
        natural_range: interval mapped to 0..100 by normalisation, fixed or a function of
            ``(value_range, bins)``.
        description: one line for listings and error messages.
    """

    name: str
    compute: Callable[[RegionStats], torch.Tensor]
    differentiable: bool
    natural_range: NaturalRange
    description: str = ""

    def range_for(self, *, value_range: tuple[float, float], bins: int) -> tuple[float, float]:
        """The ``(lo, hi)`` normalisation interval for this intensity range and bin count."""
        rng = self.natural_range
        lo, hi = rng(value_range, bins) if callable(rng) else rng
        lo, hi = float(lo), float(hi)
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValidationError(
                f"feature {self.name!r} has natural_range ({lo}, {hi}) for value_range={value_range}, "
                f"bins={bins}; it must be finite with hi > lo. Fix the FeatureSpec's natural_range."
            )
        return lo, hi


_REGISTRY: dict[str, FeatureSpec] = {}


def register_feature(spec: FeatureSpec, *, overwrite: bool = False) -> FeatureSpec:
    """Add ``spec`` to the registry and return it.

    Raises :class:`ValidationError` if the name is taken (pass ``overwrite=True`` to replace it),
    is not a non-empty identifier, or ``compute`` is not callable.
    """
    if not isinstance(spec, FeatureSpec):
        raise ValidationError(f"spec must be a FeatureSpec, got {type(spec).__name__}.")
    if not isinstance(spec.name, str) or not spec.name.isidentifier():
        raise ValidationError(
            f"FeatureSpec.name must be a non-empty identifier-like string (e.g. 'skewness'), got {spec.name!r}."
        )
    if not callable(spec.compute):
        raise ValidationError(f"FeatureSpec.compute of {spec.name!r} must be callable, got {spec.compute!r}.")
    if spec.name in _REGISTRY and not overwrite:
        raise ValidationError(
            f"feature {spec.name!r} is already registered; choose another name or pass overwrite=True."
        )
    _REGISTRY[spec.name] = spec
    return spec


def unregister_feature(name: str) -> FeatureSpec:
    """Remove and return the feature ``name`` (unknown names raise like :func:`get_feature`)."""
    spec = get_feature(name)
    del _REGISTRY[name]
    return spec


def get_feature(name: str) -> FeatureSpec:
    """The registered :class:`FeatureSpec` called ``name``; unknown names raise with a suggestion."""
    spec = _REGISTRY.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ValidationError(
            f"unknown feature name {name!r}; registered features are {list(_REGISTRY)}."
            f"{closest(str(name), _REGISTRY)} Register new ones with "
            "synthaug.features.register_feature(FeatureSpec(...))."
        )
    return spec


def available_features() -> tuple[str, ...]:
    """Names of all registered features, in registration order."""
    return tuple(_REGISTRY)
