"""Model cards: the typed record that travels with every weights file.

A card says what a generator is (architecture and its arguments), what it expects (spatial dims,
channels, label vocabulary, spacing, intensity convention, modalities), how transforms run it (the typed
:class:`InferenceSpec`: canvas, size divisor, patches, noise inputs) and what its conditioning means (the
typed :class:`FeatureSpec`: texture features, bins, per-class ranges, body mask), where it came from (training
cases, command, time, machine; the typed :class:`DataSource` records of ``training_data`` with their licences,
native spacing and, for CT, contrast phase) and how good it is (metrics). The typed :class:`UsageSpec` states
what it is for, what it is not for and its known limitations, following the model-card convention (Mitchell
et al. 2019, "Model Cards for Model Reporting"); synthaug weights are never for clinical use.

Integrity: ``sha256`` is the sha256 of the whole weights file (held by the registry card, which cannot be
inside the file it describes); ``tensor_sha256`` is the content hash of the tensors
(:func:`synthaug.weights.store.tensor_sha256`), written into the card embedded in the file at save time and
verified on every load.

Older layouts migrate on load (:func:`migrate`). Format 1 (no ``"format"`` key): the typed ``features`` and
``inference`` sections are read from the old ``features`` / ``feature_options`` / ``feature_stats`` fields
and from the training record; the size divisor, which old cards did not store, is filled in from the network
when it is built (:func:`synthaug.weights.store.load_network`). Format 2 (typed sections, no documentation or
tensor hash): ``usage``, ``training_data``, ``licence`` and ``tensor_sha256`` start empty.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from synthaug.errors import WeightsError
from synthaug.intensity import IntensityConvention

__all__ = ["ModelCard", "InferenceSpec", "NoiseSpec", "FeatureSpec", "FeatureStats", "BodyMaskSpec", "UsageSpec",
           "DataSource", "migrate", "CARD_FORMAT", "FAMILIES"]

#: The model families a card may state (which network it builds and which transform uses it).
FAMILIES = ("context", "style", "translate", "segmenter")
#: Version of the card layout; 2 = typed inference and feature sections; 3 = typed usage and training-data
#: sections, weights licence and the tensor content hash.
CARD_FORMAT = 3
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _typed(cls: type, d: Any, where: str) -> Any:
    """A section dataclass from its dict form (unknown keys refused, naming the section)."""
    if d is None or isinstance(d, cls):
        return d
    if not isinstance(d, Mapping):
        raise WeightsError(f"model card section {where!r} must be an object, got {d!r}.")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise WeightsError(f"model card section {where!r} has unknown key(s) {unknown}; known: {sorted(names)}.")
    try:
        return cls(**d)
    except TypeError as exc:
        raise WeightsError(f"model card section {where!r} is missing a key or has a wrong one: {exc}") from exc


@dataclass(frozen=True)
class NoiseSpec:
    """Noise inputs a generator takes: a per-volume latent of ``z_dim`` and ``pixel_channels`` of per-voxel noise."""

    z_dim: int = 0
    pixel_channels: int = 0


@dataclass(frozen=True)
class InferenceSpec:
    """How transforms run the network.

    Attributes:
        canvas: the 2D slice size it was trained on; smaller slices are padded up to it (instance norm and the
            learned context see the same canvas); () for none.
        divisor: spatial sizes must be multiples of this (inputs are padded to it); 0 until known: the export
            writes it, and loading fills it in from the network for cards that lack it.
        patch: training patch size for sliding-window inference (3D translators; 2D patch mode).
        overlap, weighting: sliding-window overlap fraction and blending (``uniform`` or ``gaussian``).
        pad_value: value (in the card's normalised convention) used to pad images.
        noise: its noise inputs.
    """

    canvas: tuple[int, ...] = ()
    divisor: int = 0
    patch: tuple[int, ...] = ()
    overlap: float = 0.5
    weighting: str = "uniform"
    pad_value: float = -1.0
    noise: NoiseSpec = field(default_factory=NoiseSpec)

    def __post_init__(self) -> None:
        object.__setattr__(self, "canvas", tuple(int(v) for v in self.canvas))
        object.__setattr__(self, "patch", tuple(int(v) for v in self.patch))
        object.__setattr__(self, "noise", _typed(NoiseSpec, self.noise, "inference.noise") or NoiseSpec())
        if int(self.divisor) < 0:
            raise WeightsError(f"model card inference.divisor must be >= 1 (0: not yet known), got {self.divisor}.")


@dataclass(frozen=True)
class FeatureStats:
    """Per-class feature statistics of the training data: ``min``/``max``/``mean``/``std`` are (N_L, N_F) nested
    lists of normalised (0..1) values, ``count`` the slices per class."""

    min: tuple[tuple[float, ...], ...]
    max: tuple[tuple[float, ...], ...]
    mean: tuple[tuple[float, ...], ...] = ()
    std: tuple[tuple[float, ...], ...] = ()
    count: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name in ("min", "max", "mean", "std"):
            object.__setattr__(self, name, tuple(tuple(float(x) for x in row) for row in getattr(self, name)))
        object.__setattr__(self, "count", tuple(float(c) for c in self.count))


@dataclass(frozen=True)
class BodyMaskSpec:
    """The Med-USIS body mask of a style generator's body class (threshold on the normalised image, opening)."""

    threshold: float = 0.05
    value_range: tuple[float, float] = (-1.0, 1.0)
    opening_size: int = 3
    largest_component: bool = True
    slice_axis: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "value_range", tuple(float(v) for v in self.value_range))


@dataclass(frozen=True)
class FeatureSpec:
    """What a label-to-image generator's conditioning means.

    Attributes:
        names: texture features it is conditioned on, in order (``synthaug.features``).
        bins: histogram bins of the entropy feature.
        value_range: the normalised image range the features are measured on.
        stats: per-class statistics of the training data (the ``features="card"`` range).
        body_mask: the body mask a style generator's body class comes from.
    """

    names: tuple[str, ...] = ()
    bins: int = 32
    value_range: tuple[float, float] = (-1.0, 1.0)
    stats: FeatureStats | None = None
    body_mask: BodyMaskSpec | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "value_range", tuple(float(v) for v in self.value_range))
        object.__setattr__(self, "stats", _typed(FeatureStats, self.stats, "features.stats"))
        object.__setattr__(self, "body_mask", _typed(BodyMaskSpec, self.body_mask, "features.body_mask"))


@dataclass(frozen=True)
class UsageSpec:
    """What a network is for and what it is not for (the model-card convention).

    Attributes:
        intended_use: the use it was trained and measured for.
        out_of_scope_use: uses it must not be put to (each a sentence).
        limitations: known weaknesses, with the measured figure where there is one.
        clinical_use: always ``False``: synthaug weights are research artefacts, not for clinical use; a card
            that claims otherwise is refused.

    >>> UsageSpec(intended_use="data augmentation").clinical_use
    False
    """

    intended_use: str = ""
    out_of_scope_use: tuple[str, ...] = ()
    limitations: tuple[str, ...] = ()
    clinical_use: bool = False

    def __post_init__(self) -> None:
        for name in ("out_of_scope_use", "limitations"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise WeightsError(f"model card usage.{name} must be a list of sentences, got the string {value!r}.")
            object.__setattr__(self, name, tuple(str(v) for v in value))
        if self.clinical_use is not False:
            raise WeightsError(
                f"model card usage.clinical_use is {self.clinical_use!r}: synthaug weights are research artefacts, not "
                "for clinical use; set it to false."
            )


@dataclass(frozen=True)
class DataSource:
    """One data set a network was trained on.

    Attributes:
        name: its short name (a subject of :mod:`synthaug.data.subjects`, a simulator, a dataset id).
        description: what it is.
        cases: the case ids of it that entered training (the card's ``training_cases`` come from these).
        origin: where it comes from (archive, member path, generator), so anyone can fetch the same bytes.
        licence: what is known about its terms (say "unknown" rather than leave it empty).
        modality: ``CT``, ``MR`` or an MR contrast (``T1w``, ``T2w``, ``PDw``).
        spacing: its native voxel spacing in mm (one value per array axis).
        labels: where its label maps come from (e.g. TotalSegmentator model predictions, not manual ground truth);
            empty when the network saw no labels of it.
        simulated: the images are simulated, not acquired.
        contrast: for CT, the contrast phase of the scans (e.g. ``non-contrast``); required for CT.
    """

    name: str
    description: str
    cases: tuple[str, ...]
    origin: str
    licence: str
    modality: str
    spacing: tuple[float, ...]
    labels: str = ""
    simulated: bool = False
    contrast: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "cases", tuple(str(c) for c in self.cases))
        object.__setattr__(self, "spacing", tuple(float(v) for v in self.spacing))
        if not self.spacing or any(not v > 0 for v in self.spacing):
            raise WeightsError(f"model card training_data {self.name!r}: spacing must be positive millimetres per axis, "
                               f"got {self.spacing}.")
        if not self.licence:
            raise WeightsError(f"model card training_data {self.name!r}: licence is empty; state what is known "
                               "(\"unknown\" if nothing is).")
        if self.modality == "CT" and not self.contrast:
            raise WeightsError(f"model card training_data {self.name!r}: CT needs its contrast phase (e.g. "
                               "\"non-contrast\"); a generator trained on one phase renders that phase.")


def migrate(d: Mapping[str, Any]) -> dict[str, Any]:
    """A card dict of an older layout (format 1 or 2) in the current layout (see the module docstring)."""
    d = dict(d)
    if d.get("format") == CARD_FORMAT:
        return d
    if d.get("format") == 2:  # 2 -> 3: the new fields start empty (their defaults)
        d["format"] = CARD_FORMAT
        return d
    if d.get("format") not in (None, 1):
        raise WeightsError(f"model card format {d.get('format')!r} is not one synthaug knows (1..{CARD_FORMAT}); was it "
                           "written by a newer synthaug?")
    d.pop("format", None)
    names = tuple(d.pop("features", ()) or ())
    options = dict(d.pop("feature_options", {}) or {})
    stats = d.pop("feature_stats", {}) or {}
    body = options.get("body_mask")
    d["features"] = {
        "names": list(names), "bins": int(options.get("bins", 32)),
        "value_range": list(options.get("value_range", (-1.0, 1.0))),
        "stats": {k: stats[k] for k in ("min", "max", "mean", "std", "count") if k in stats} if stats else None,
        "body_mask": {k: body[k] for k in ("threshold", "value_range", "opening_size", "largest_component",
                                           "slice_axis") if k in body} if isinstance(body, Mapping) else None,
    }
    training = d.get("training", {}) or {}
    old = dict(training.get("inference", {}) or {})
    size = int(old.get("size", 0) or (training.get("config", {}) or {}).get("size", 0) or 0)
    args = d.get("arguments", {}) or {}
    arch = d.get("architecture", "")
    z_dim = int(args.get("z_dim", 0) or 0)
    if arch == "context_generator" and args.get("variant") != "oasis":
        z_dim = 0  # only the OASIS variant of ConText-GAN takes a latent
    if arch not in ("context_generator", "style_swap_generator", "spade_generator"):
        z_dim = 0
    d["inference"] = {
        "canvas": [size, size] if size and d.get("spatial_dims") == 2 else [],
        "divisor": 0,  # unknown in old cards: filled in from the network when it is built
        "patch": list(old.get("patch") or []) if not isinstance(old.get("patch"), int) else [old["patch"]] * int(d.get("spatial_dims", 2)),
        "overlap": float(old.get("overlap", 0.5)), "weighting": str(old.get("weighting", "uniform")),
        "pad_value": float(old.get("pad_value", -1.0)),
        "noise": {"z_dim": z_dim, "pixel_channels": int(args.get("noise_channels", 0) or 0)},
    }
    d["format"] = CARD_FORMAT
    return d


@dataclass(frozen=True)
class ModelCard:
    """Everything needed to rebuild, trust and use one frozen network."""

    name: str
    family: str
    architecture: str
    arguments: dict[str, Any]
    spatial_dims: int
    in_channels: int
    out_channels: int
    intensity: dict[str, Any]
    labels: tuple[str, ...] = ()
    spacing: tuple[float, ...] = ()
    modality: str = ""
    source_modality: str = ""
    target_modality: str = ""
    features: FeatureSpec = field(default_factory=FeatureSpec)
    inference: InferenceSpec = field(default_factory=InferenceSpec)
    usage: UsageSpec = field(default_factory=UsageSpec)
    training_data: tuple[DataSource, ...] = ()
    licence: str = ""
    training_cases: tuple[str, ...] = ()
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    file: str = ""
    sha256: str = ""
    tensor_sha256: str = ""
    format: int = CARD_FORMAT

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", _typed(FeatureSpec, self.features, "features") or FeatureSpec())
        object.__setattr__(self, "inference", _typed(InferenceSpec, self.inference, "inference") or InferenceSpec())
        object.__setattr__(self, "usage", _typed(UsageSpec, self.usage, "usage") or UsageSpec())
        if isinstance(self.training_data, (str, Mapping)):
            raise WeightsError(f"model card {self.name!r}: training_data must be a list of data sources.")
        object.__setattr__(self, "training_data", tuple(
            _typed(DataSource, src, f"training_data[{i}]") for i, src in enumerate(self.training_data)))
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "training_cases", tuple(self.training_cases))
        object.__setattr__(self, "spacing", tuple(float(v) for v in self.spacing))
        if self.format != CARD_FORMAT:
            raise WeightsError(f"model card {self.name!r}: format {self.format!r} is not {CARD_FORMAT}; read it through "
                               "ModelCard.from_dict, which migrates older cards.")
        if self.family not in FAMILIES:
            raise WeightsError(f"model card {self.name!r}: family {self.family!r} is not one of {FAMILIES}.")
        if self.spatial_dims not in (2, 3):
            raise WeightsError(f"model card {self.name!r}: spatial_dims must be 2 or 3, got {self.spatial_dims}.")
        if len(self.spacing) not in (0, self.spatial_dims) or any(not v > 0 for v in self.spacing):
            raise WeightsError(f"model card {self.name!r}: spacing must hold {self.spatial_dims} positive millimetre "
                               f"values (the training grid of a {self.spatial_dims}D network), got {list(self.spacing)}.")
        for key in ("sha256", "tensor_sha256"):
            if getattr(self, key) and not _SHA256.fullmatch(getattr(self, key)):
                raise WeightsError(f"model card {self.name!r}: {key} must be 64 lower-case hex digits or empty, got "
                                   f"{getattr(self, key)!r}.")
        try:
            IntensityConvention.from_dict(self.intensity)  # validates
        except (ValueError, TypeError, KeyError) as exc:
            raise WeightsError(f"model card {self.name!r}: intensity {self.intensity!r} is not valid: {exc}") from exc

    @property
    def intensity_convention(self) -> IntensityConvention:
        return IntensityConvention.from_dict(self.intensity)

    @property
    def hu_window(self) -> tuple[float, float] | None:
        """The CT window in Hounsfield units the network works in, or None for a percentile convention."""
        conv = self.intensity_convention
        return (float(conv.low), float(conv.high)) if conv.kind == "ct_window" else None

    @property
    def ct_contrast(self) -> tuple[str, ...]:
        """The contrast phases of the CT it was trained on (empty when no CT data source is recorded)."""
        return tuple(dict.fromkeys(src.contrast for src in self.training_data if src.modality == "CT"))

    def undocumented(self) -> tuple[str, ...]:
        """Names of the documentation fields still empty (every shipped card has none)."""
        checks = {
            "usage.intended_use": self.usage.intended_use, "usage.out_of_scope_use": self.usage.out_of_scope_use,
            "usage.limitations": self.usage.limitations, "training_data": self.training_data,
            "licence": self.licence, "spacing": self.spacing, "training_cases": self.training_cases,
            "metrics": self.metrics,
        }
        return tuple(name for name, value in checks.items() if not value)

    @property
    def appearance_randomised(self) -> bool:
        """A label-to-image generator trained on appearance-randomised targets (``training.config.appearance_prob``)."""
        config = self.training.get("config", {}) if isinstance(self.training, Mapping) else {}
        return float(config.get("appearance_prob", 0) or 0) > 0

    @property
    def n_labels(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelCard:
        """A card from its JSON form; older layouts are migrated (:func:`migrate`)."""
        if not isinstance(d, Mapping):
            raise WeightsError(f"model card must be a JSON object, got {type(d).__name__}.")
        known = set(cls.__dataclass_fields__) | {"feature_options", "feature_stats"}  # the latter two: old layout
        unknown = sorted(set(d) - known)
        if unknown:
            raise WeightsError(f"model card has unknown field(s) {unknown}; was it written by a newer synthaug?")
        try:
            return cls(**migrate(d))
        except (TypeError, ValueError, AttributeError) as exc:
            raise WeightsError(f"model card is missing a field or has a wrong one: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WeightsError(f"model card is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def read(cls, path: Path) -> ModelCard:
        """The card in a JSON file; every error names the file."""
        path = Path(path)
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise WeightsError(f"model card {str(path)!r} cannot be read: {exc}") from exc
        except WeightsError as exc:
            raise WeightsError(f"model card {str(path)!r}: {exc}") from exc

    def replace(self, **changes: Any) -> ModelCard:
        d = self.to_dict()
        d.update(changes)
        return ModelCard.from_dict(d)


def _plain(x: Any) -> Any:
    """Tuples -> lists, recursively (the JSON form)."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x
