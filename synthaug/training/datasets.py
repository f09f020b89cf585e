"""Named training datasets for the generators, built from the open sample data.

Each entry returns the training volumes, the held-out volumes (never used for training; they are
what evaluation scores), the label vocabulary and the intensity convention. Held-out slabs are
whole contiguous slabs with a gap of a few slices to the training slabs, so no held-out slice has
a training neighbour. Case ids ``<subject>:z<start>-<stop>`` (stop exclusive) are what model cards
list and what leakage checks compare.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from synthaug._validate import closest
from synthaug.errors import ValidationError
from synthaug.intensity import IntensityConvention
from synthaug.training.slices import Volume

__all__ = ["TrainingData", "TRAINING_DATA", "get_training_data", "case_id", "parse_case_id"]


@dataclass(frozen=True)
class TrainingData:
    name: str
    train: tuple[Volume, ...]
    heldout: tuple[Volume, ...]
    labels: tuple[str, ...]
    intensity: IntensityConvention
    modality: str
    spacing: float | None
    label_source: str

    @property
    def training_cases(self) -> tuple[str, ...]:
        return tuple(v.case_id for v in self.train)

    @property
    def heldout_cases(self) -> tuple[str, ...]:
        return tuple(v.case_id for v in self.heldout)


def case_id(subject: str, start: int, stop: int) -> str:
    return f"{subject}:z{start:03d}-{stop:03d}"


def parse_case_id(case: str) -> tuple[str, int, int]:
    """``"ct_a:z010-020"`` -> ("ct_a", 10, 20); a bare subject name means all slices (0, 10**6)."""
    if ":z" not in case:
        return case, 0, 10**6
    subject, z = case.split(":z")
    a, b = z.split("-")
    return subject, int(a), int(b)


def _slab(subject, start: int, stop: int, label: np.ndarray) -> Volume:
    return Volume(
        case_id(subject.name, start, stop),
        subject.image[:, :, start:stop],
        label[:, :, start:stop],
        subject.spacing,
    )


def _split(subject, label: np.ndarray, heldout: tuple[int, int], gap: int) -> tuple[list[Volume], list[Volume]]:
    n = subject.image.shape[2]
    a, b = heldout
    train = []
    if a - gap > 0:
        train.append(_slab(subject, 0, a - gap, label))
    if b + gap < n:
        train.append(_slab(subject, b + gap, n, label))
    return train, [_slab(subject, a, b, label)]


def _ct_a() -> TrainingData:
    from synthaug.data.scenarios import get_scenario
    from synthaug.data.subjects import load_subject
    from synthaug.data.vocabulary import superclass_vocabulary, to_shared, to_superclasses

    subject = load_subject("ct_a")
    label = to_superclasses(to_shared(subject.label, "total")).astype(np.int16)
    # Hold out exactly the in-domain benchmark's test slab, so the shipped CT model can serve that
    # benchmark without leakage.
    scenario = get_scenario("in-domain")
    test = [c for c in scenario.cases if c.role == "test" and c.subject == "ct_a"]
    start, stop = min(c.z_start for c in test), max(c.z_stop for c in test)
    train, held = _split(subject, label, (start, stop), gap=2)
    return TrainingData(
        "ct_a", tuple(train), tuple(held), tuple(superclass_vocabulary().names),
        IntensityConvention.ct_window(-200.0, 300.0), "CT", None, subject.label_source,
    )


def _mni() -> TrainingData:
    from synthaug.data.subjects import load_subject

    subject = load_subject("mni")
    label = subject.label.astype(np.int16)
    z = np.nonzero(label.any(axis=(0, 1)))[0]
    lo, hi = int(z.min()), int(z.max()) + 1
    centre = (lo + hi) // 2
    half = max(4, (hi - lo) // 12)  # ~1/6 of the brain's extent, through the ventricles
    train, held = _split(subject, label, (centre - half, centre + half), gap=3)
    names = ("background",) + tuple(subject.class_names[i] for i in sorted(subject.class_names))
    return TrainingData(
        "mni", tuple(train), tuple(held), names, IntensityConvention.percentile(0.5, 99.5), "MR", 2.0,
        subject.label_source,
    )


TRAINING_DATA: dict[str, Callable[[], TrainingData]] = {"ct_a": _ct_a, "mni": _mni}


def get_training_data(name: str) -> TrainingData:
    if name not in TRAINING_DATA:
        raise ValidationError(f"unknown training data {name!r}; known: {sorted(TRAINING_DATA)}.{closest(name, TRAINING_DATA)}")
    return TRAINING_DATA[name]()
