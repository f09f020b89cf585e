"""Augmentation recipes: typed, validated, loaded from JSON (or YAML).

A recipe says which synthaug transforms run on the training batches, how often, and under which
schedule. One file serves the nnU-Net trainer (``SYNTHAUG_RECIPE=recipe.json nnUNetv2_train ... -tr
nnUNetTrainerSynthAug``), the offline expansion (``synthaug expand --recipe recipe.json``) and any batch
pipeline through :class:`synthaug.recipes.BatchSynthesizer`.

Example (every key except ``transforms`` is optional)::

    {
      "synthaug_recipe": 1,
      "seed": 0,
      "channel": 0,
      "transforms": [
        {"name": "context_texture", "probability": 0.5,
         "deform": {"enabled": true, "control_points": 4, "max_displacement": 6.0},
         "options": {"weights": "context_ct_a", "features": "perturb", "perturbation": 0.1}}
      ],
      "schedule": {"warmup_epochs": 10, "ramp_epochs": 40, "start": 0.0},
      "targeting": {"class_weights": {"spleen": 3.0}, "default_weight": 1.0},
      "gate": {"checker": "segmenter_ct_a", "threshold": 0.7},
      "budget": {"num_epochs": 100, "iterations_per_epoch": 50, "val_iterations_per_epoch": 10}
    }

Semantics:

- ``transforms[i].probability`` is the chance that a training sample is replaced by a synthetic one made
  with transform ``i`` once the schedule is at full strength; a sample gets at most one transform, so the
  probabilities must sum to at most 1 (their sum is the target synthetic fraction).
- ``schedule``: no synthesis during the first ``warmup_epochs``; then the probabilities are scaled by a
  factor rising linearly from ``start`` to 1 over ``ramp_epochs`` epochs (0 = full strength at once).
- ``targeting.class_weights``: per-class multipliers (label name or id) for oversampling rare classes; a
  sample's probability is multiplied by the largest weight among the foreground classes it contains
  (``default_weight`` when it contains none of the listed classes), then capped at 1.
- ``deform``: an elastic deformation of the label map (and the real image) drawn before synthesis, so the
  synthetic image comes with a new shape. Handled by the batch synthesiser for every transform.
- ``gate``: the optional label-faithfulness check by a frozen segmenter (see ``batch_synth``).
- ``budget``: nnU-Net epochs / iterations; the environment variables ``SYNTHAUG_NUM_EPOCHS``,
  ``SYNTHAUG_ITERS_PER_EPOCH`` and ``SYNTHAUG_VAL_ITERS`` override it.

Transforms are looked up by name in the registry (:mod:`synthaug.recipes.registry`); a transform's
``options`` are the fields of its core class's options record (the one declaration of its options).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from synthaug._validate import closest
from synthaug.errors import DataError, MissingDependencyError, ValidationError
from synthaug.recipes.registry import get_transform, transform_names

__all__ = [
    "RECIPE_ENV",
    "BUDGET_ENV",
    "DeformSpec",
    "TransformSpec",
    "Schedule",
    "Targeting",
    "GateSpec",
    "Budget",
    "Recipe",
    "load_recipe",
    "recipe_from_env",
    "budget_from_env",
    "derive_seed",
]

RECIPE_ENV = "SYNTHAUG_RECIPE"
BUDGET_ENV = {
    "num_epochs": "SYNTHAUG_NUM_EPOCHS",
    "iterations_per_epoch": "SYNTHAUG_ITERS_PER_EPOCH",
    "val_iterations_per_epoch": "SYNTHAUG_VAL_ITERS",
}
_FORMAT_VERSION = 1
_EXAMPLE = (
    f"export {RECIPE_ENV}=$(synthaug recipe path context_ct)   "
    "(a JSON file with at least {\"transforms\": [{\"name\": \"context_texture\", \"probability\": 0.5, "
    "\"options\": {\"weights\": \"context_ct_a\"}}]})"
)


def derive_seed(*parts: Any) -> int:
    """A seed in ``[0, 2**62)`` derived from ``parts`` (stable across processes, platforms and runs).

    >>> derive_seed(0, "case_001", 1) == derive_seed(0, "case_001", 1)
    True
    """
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 2


# ---------------------------------------------------------------------------------------- records


def bounded(default: Any, *, low: float | None = None, high: float | None = None, doc: str = "") -> Any:
    """A record field whose bounds (and one-line doc) are declared once: the loader checks them and
    :func:`synthaug.recipes.schema.recipe_schema` publishes them."""
    return field(default=default, metadata={"low": low, "high": high, "doc": doc})


def _read(cls: type, d: Mapping[str, Any], name: str, where: str, source: str) -> Any:
    """Field ``name`` of record ``cls`` from ``d``: its default when absent, else checked against its declared
    type (bool/int/float) and bounds."""
    f = next(f for f in fields(cls) if f.name == name)
    value = d.get(name, f.default)
    if f.type in ("bool", bool):
        if not isinstance(value, bool):
            raise ValidationError(f"{_where(f'{where}.{name}', source)} must be true or false, got {value!r}.")
        return value
    if value is None and "None" in str(f.type):
        return None
    integer = str(f.type).startswith("int")
    out = _num(value, f"{where}.{name}" if where else name, source, low=f.metadata.get("low"),
               high=f.metadata.get("high"), integer=integer)
    return int(out) if integer else float(out)


def _where(where: str, source: str) -> str:
    return f"recipe {where}" + (f" (file {source})" if source else "")


def _check_keys(d: Mapping[str, Any], allowed: Sequence[str], where: str, source: str) -> None:
    if not isinstance(d, Mapping):
        raise ValidationError(f"{_where(where, source)} must be a JSON object, got {type(d).__name__}: {d!r}.")
    for k in d:
        if k not in allowed:
            raise ValidationError(
                f"{_where(where, source)} has unknown key {k!r}; allowed: {sorted(allowed)}.{closest(str(k), allowed)}"
            )


def _num(value: Any, where: str, source: str, *, low: float | None = None, high: float | None = None,
         integer: bool = False) -> Any:
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or value != value:
        kind = "an integer" if integer else "a number"
        raise ValidationError(f"{_where(where, source)} must be {kind}, got {value!r}.")
    if (low is not None and value < low) or (high is not None and value > high):
        rng = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise ValidationError(f"{_where(where, source)} must lie in {rng}, got {value!r}.")
    return value


@dataclass(frozen=True)
class DeformSpec:
    """Elastic deformation drawn before synthesis (displacement in voxels)."""

    enabled: bool = bounded(False, doc="draw a deformation before synthesis")
    control_points: int = bounded(4, low=2, high=64, doc="control points per axis of the displacement grid")
    max_displacement: float = bounded(6.0, low=0.0, doc="largest displacement, voxels")

    @classmethod
    def from_dict(cls, d: Any, where: str, source: str = "") -> DeformSpec:
        if d is None or d is False:
            return cls()
        if d is True:
            return cls(enabled=True)
        _check_keys(d, [f.name for f in fields(cls)], where, source)
        # a deform object switches the deformation on unless it says "enabled": false
        d = {"enabled": True, **d}
        return cls(**{f.name: _read(cls, d, f.name, where, source) for f in fields(cls)})

    def to_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "control_points": self.control_points, "max_displacement": self.max_displacement}


@dataclass(frozen=True)
class TransformSpec:
    """One recipe transform: registered ``name``, ``probability``, builder ``options``, ``deform``."""

    name: str
    probability: float = bounded(1.0, low=0.0, high=1.0, doc="share of the training samples made by this transform")
    options: Mapping[str, Any] = field(default_factory=dict)
    deform: DeformSpec = field(default_factory=DeformSpec)

    @classmethod
    def from_dict(cls, d: Any, where: str, source: str = "") -> TransformSpec:
        _check_keys(d, [f.name for f in fields(cls)], where, source)
        if "name" not in d:
            raise ValidationError(
                f"{_where(where, source)} needs a 'name' (one of {list(transform_names())})."
            )
        name = d["name"]
        if not isinstance(name, str):
            raise ValidationError(f"{_where(where + '.name', source)} must be a string, got {name!r}.")
        try:
            entry = get_transform(name)
        except ValidationError as exc:
            raise ValidationError(f"{_where(where + '.name', source)}: {exc}") from None
        prob = _read(cls, d, "probability", where, source)
        options = d.get("options", {}) or {}
        if not isinstance(options, Mapping):
            raise ValidationError(f"{_where(where + '.options', source)} must be a JSON object, got {options!r}.")
        entry.check_recipe_options(options, where=_where(where + ".options", source))
        deform = DeformSpec.from_dict(d.get("deform"), where + ".deform", source)
        return cls(name=name, probability=float(prob), options=dict(options), deform=deform)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "probability": self.probability, "options": dict(self.options),
                "deform": self.deform.to_dict()}


@dataclass(frozen=True)
class Schedule:
    """Warm-up and linear ramp of the synthetic fraction over epochs."""

    warmup_epochs: int = bounded(0, low=0, doc="epochs without synthesis")
    ramp_epochs: int = bounded(0, low=0, doc="epochs of the linear ramp to full strength (0: at once)")
    start: float = bounded(0.0, low=0.0, high=1.0, doc="strength at the start of the ramp")

    def factor(self, epoch: int) -> float:
        """Multiplier of the transform probabilities at ``epoch`` (0-based): 0 in warm-up, then ramps to 1."""
        if epoch < self.warmup_epochs:
            return 0.0
        if self.ramp_epochs <= 0:
            return 1.0
        t = (epoch - self.warmup_epochs) / self.ramp_epochs
        return float(min(1.0, self.start + (1.0 - self.start) * t))

    @classmethod
    def from_dict(cls, d: Any, where: str, source: str = "") -> Schedule:
        if d is None:
            return cls()
        _check_keys(d, [f.name for f in fields(cls)], where, source)
        return cls(**{f.name: _read(cls, d, f.name, where, source) for f in fields(cls)})

    def to_dict(self) -> dict[str, Any]:
        return {"warmup_epochs": self.warmup_epochs, "ramp_epochs": self.ramp_epochs, "start": self.start}


@dataclass(frozen=True)
class Targeting:
    """Per-class multipliers of the synthesis probability (keys: label names or ids as strings)."""

    class_weights: Mapping[str, float] = field(default_factory=dict, metadata={"low": 0.0})
    default_weight: float = bounded(1.0, low=0.0, doc="weight of a sample with none of the listed classes")

    @classmethod
    def from_dict(cls, d: Any, where: str, source: str = "") -> Targeting | None:
        if d is None:
            return None
        _check_keys(d, ("class_weights", "default_weight"), where, source)
        weights = d.get("class_weights", {})
        if not isinstance(weights, Mapping) or not weights:
            raise ValidationError(
                f"{_where(where + '.class_weights', source)} must be a non-empty object "
                f"{{label name or id: weight}}, got {weights!r}."
            )
        low = next(f for f in fields(cls) if f.name == "class_weights").metadata["low"]
        out = {str(k): float(_num(v, f"{where}.class_weights[{k!r}]", source, low=low)) for k, v in weights.items()}
        return cls(class_weights=out, default_weight=_read(cls, d, "default_weight", where, source))

    def resolve(self, labels: Mapping[str, int] | None) -> dict[int, float]:
        """``{label id: weight}`` using the dataset's ``{name: id}`` for names."""
        out: dict[int, float] = {}
        for key, w in self.class_weights.items():
            if labels is not None and key in labels:
                out[int(labels[key])] = w
            elif key.lstrip("-").isdigit():
                out[int(key)] = w
            else:
                known = list(labels) if labels else []
                raise ValidationError(
                    f"recipe targeting.class_weights names class {key!r}, which the dataset does not have "
                    f"(labels: {known}).{closest(key, known)}"
                )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"class_weights": dict(self.class_weights), "default_weight": self.default_weight}


@dataclass(frozen=True)
class GateSpec:
    """Label-faithfulness gate: frozen ``checker`` (segmenter weights name) and Dice ``threshold``."""

    checker: str
    threshold: float = bounded(0.5, low=0.0, high=1.0, doc="Dice below which a synthetic sample is rejected")

    @classmethod
    def from_dict(cls, d: Any, where: str, source: str = "") -> GateSpec | None:
        if d is None:
            return None
        _check_keys(d, ("checker", "threshold"), where, source)
        checker = d.get("checker")
        if not isinstance(checker, str) or not checker:
            raise ValidationError(
                f"{_where(where + '.checker', source)} must name segmenter weights (family 'segmenter'), got {checker!r}."
            )
        return cls(checker=checker, threshold=_read(cls, d, "threshold", where, source))

    def to_dict(self) -> dict[str, Any]:
        return {"checker": self.checker, "threshold": self.threshold}


@dataclass(frozen=True)
class Budget:
    """nnU-Net training budget; ``None`` keeps nnU-Net's default (1000 x 250, 50 validation iterations)."""

    num_epochs: int | None = bounded(None, low=1, doc="nnU-Net epochs")
    iterations_per_epoch: int | None = bounded(None, low=1, doc="training iterations per epoch")
    val_iterations_per_epoch: int | None = bounded(None, low=1, doc="validation iterations per epoch")

    @classmethod
    def from_dict(cls, d: Any, where: str, source: str = "") -> Budget:
        if d is None:
            return cls()
        _check_keys(d, tuple(BUDGET_ENV), where, source)
        return cls(**{k: _read(cls, d, k, where, source) for k in BUDGET_ENV})

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in BUDGET_ENV}


# "$schema" lets an editor find docs/recipe.schema.json; the loader ignores its value.
_TOP_KEYS = ("$schema", "synthaug_recipe", "description", "seed", "channel", "transforms", "schedule", "targeting", "gate",
             "budget")


@dataclass(frozen=True)
class Recipe:
    """A validated recipe (see the module docstring); :meth:`to_dict` round-trips through :meth:`from_dict`."""

    transforms: tuple[TransformSpec, ...]
    schedule: Schedule = field(default_factory=Schedule)
    targeting: Targeting | None = None
    gate: GateSpec | None = None
    budget: Budget = field(default_factory=Budget)
    seed: int = bounded(0, low=0, doc="base seed of every draw (per case and epoch derived from it)")
    channel: int = bounded(0, low=0, doc="input channel the transforms read and write")
    description: str = ""
    source: str = ""

    @property
    def total_probability(self) -> float:
        return float(sum(t.probability for t in self.transforms))

    @classmethod
    def from_dict(cls, d: Any, source: str = "") -> Recipe:
        _check_keys(d, _TOP_KEYS, "file" if source else "(top level)", source)
        version = d.get("synthaug_recipe", _FORMAT_VERSION)
        if version != _FORMAT_VERSION:
            raise ValidationError(
                f"{_where('synthaug_recipe', source)}: format version {version!r} is not supported (this synthaug "
                f"reads version {_FORMAT_VERSION})."
            )
        items = d.get("transforms")
        # An explicit empty list is allowed: synthesis off (nnU-Net's default augmentation with the
        # recipe's budget), the benchmark's "default" arm. A missing key is still an error.
        if not isinstance(items, list):
            raise ValidationError(
                f"{_where('transforms', source)} must be a list of transforms ([] for none), e.g. "
                "[{\"name\": \"context_texture\", \"probability\": 0.5, \"options\": {\"weights\": \"context_ct_a\"}}]; "
                f"got {items!r}."
            )
        transforms = tuple(TransformSpec.from_dict(t, f"transforms[{i}]", source) for i, t in enumerate(items))
        total = sum(t.probability for t in transforms)
        if total > 1.0 + 1e-9:
            raise ValidationError(
                f"{_where('transforms', source)}: the probabilities sum to {total:g} > 1. A sample gets at most one "
                "transform, so the probabilities are shares of the batch: lower them so that they sum to at most 1."
            )
        seed = _read(cls, d, "seed", "", source)
        channel = _read(cls, d, "channel", "", source)
        desc = d.get("description", "")
        if not isinstance(desc, str):
            raise ValidationError(f"{_where('description', source)} must be a string.")
        return cls(
            transforms=transforms,
            schedule=Schedule.from_dict(d.get("schedule"), "schedule", source),
            targeting=Targeting.from_dict(d.get("targeting"), "targeting", source),
            gate=GateSpec.from_dict(d.get("gate"), "gate", source),
            budget=Budget.from_dict(d.get("budget"), "budget", source),
            seed=seed,
            channel=channel,
            description=desc,
            source=source,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "synthaug_recipe": _FORMAT_VERSION,
            "description": self.description,
            "seed": self.seed,
            "channel": self.channel,
            "transforms": [t.to_dict() for t in self.transforms],
            "schedule": self.schedule.to_dict(),
            "targeting": self.targeting.to_dict() if self.targeting else None,
            "gate": self.gate.to_dict() if self.gate else None,
            "budget": self.budget.to_dict(),
        }

    def sha256(self) -> str:
        """Checksum of the canonical JSON form (independent of formatting and key order in the file)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------------------- loading


def _parse_text(text: str, path: Path) -> Any:
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as exc:
            raise MissingDependencyError(
                f"recipe {path} is YAML but PyYAML is not installed; install it with: pip install pyyaml "
                "(or write the recipe as JSON)."
            ) from exc
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValidationError(f"recipe file {path} is not valid YAML: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"recipe file {path} is not valid JSON: {exc}") from exc


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read and validate a recipe file (``.json``; ``.yaml``/``.yml`` when PyYAML is installed)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"recipe file {str(p)!r} does not exist. Example: {_EXAMPLE}")
    try:
        text = p.read_text()
    except OSError as exc:
        raise DataError(f"recipe file {str(p)!r} cannot be read ({exc}).") from exc
    return Recipe.from_dict(_parse_text(text, p), source=str(p))


def recipe_from_env(environ: Mapping[str, str] | None = None) -> Recipe:
    """The recipe named by ``$SYNTHAUG_RECIPE`` (a clear error naming the variable when unset or missing)."""
    env = os.environ if environ is None else environ
    value = env.get(RECIPE_ENV, "").strip()
    if not value:
        raise DataError(
            f"the environment variable {RECIPE_ENV} is not set; nnUNetTrainerSynthAug needs a recipe file. "
            f"Example: {_EXAMPLE}"
        )
    if not Path(value).is_file():
        raise DataError(
            f"{RECIPE_ENV}={value!r} does not name an existing file. Example: {_EXAMPLE}"
        )
    return load_recipe(value)


def budget_from_env(recipe_budget: Budget, environ: Mapping[str, str] | None = None) -> Budget:
    """``recipe_budget`` with any of ``SYNTHAUG_NUM_EPOCHS`` / ``_ITERS_PER_EPOCH`` / ``_VAL_ITERS`` applied."""
    env = os.environ if environ is None else environ
    vals = recipe_budget.to_dict()
    for key, var in BUDGET_ENV.items():
        raw = env.get(var, "").strip()
        if not raw:
            continue
        try:
            n = int(raw)
        except ValueError:
            n = 0
        if n < 1:
            raise ValidationError(f"environment variable {var}={raw!r} must be a positive integer, e.g. {var}=5.")
        vals[key] = n
    return Budget(**vals)
