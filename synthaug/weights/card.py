"""Model cards: the typed record that travels with every weights file.

A card says what a generator is (architecture and its arguments), what it expects (spatial dims,
channels, label vocabulary, spacing, intensity convention, modalities, texture features), where it
came from (training cases, command, time, machine) and how good it is (metrics). The weights file
is identified by its sha256; loading refuses a file whose checksum differs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from synthaug.errors import WeightsError
from synthaug.intensity import IntensityConvention

__all__ = ["ModelCard"]

_FAMILIES = ("context", "style", "translate", "segmenter")


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
    features: tuple[str, ...] = ()
    feature_options: dict[str, Any] = field(default_factory=dict)
    feature_stats: dict[str, Any] = field(default_factory=dict)
    training_cases: tuple[str, ...] = ()
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    file: str = ""
    sha256: str = ""

    def __post_init__(self) -> None:
        if self.family not in _FAMILIES:
            raise WeightsError(f"model card {self.name!r}: family {self.family!r} is not one of {_FAMILIES}.")
        if self.spatial_dims not in (2, 3):
            raise WeightsError(f"model card {self.name!r}: spatial_dims must be 2 or 3, got {self.spatial_dims}.")
        IntensityConvention.from_dict(self.intensity)  # validates

    @property
    def intensity_convention(self) -> IntensityConvention:
        return IntensityConvention.from_dict(self.intensity)

    @property
    def n_labels(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("labels", "spacing", "features", "training_cases"):
            d[k] = list(d[k])
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise WeightsError(f"model card has unknown field(s) {unknown}; was it written by a newer synthaug?")
        try:
            d = dict(d)
            for k in ("labels", "features", "training_cases"):
                d[k] = tuple(d.get(k, ()))
            d["spacing"] = tuple(float(s) for s in d.get("spacing", ()))
            return cls(**d)
        except TypeError as exc:
            raise WeightsError(f"model card is missing a field or has a wrong one: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise WeightsError(f"model card is not valid JSON: {exc}") from exc

    @classmethod
    def read(cls, path: Path) -> ModelCard:
        return cls.from_json(Path(path).read_text())

    def replace(self, **changes: Any) -> ModelCard:
        d = self.to_dict()
        d.update(changes)
        return ModelCard.from_dict(d)
