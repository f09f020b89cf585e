"""Label-noise ceiling: how well two TotalSegmentator releases agree on a scenario's test slabs.

The references of the TotalSegmentator scenarios are model predictions. TotalSegmentator 2.10.0 and
2.18.0 ship the same example images (byte-identical; the fetch checks it) with labels predicted by
different model releases. Their Dice on the slabs and classes the benchmark scores is a ceiling set by
label noise: a segmenter that agrees with the 2.18.0 reference as well as the 2.10.0 release does is as
close to it as a second TotalSegmentator release, and differences well below that gap are within the
references' own noise.

Both label versions are mapped by class *name* (each release's own ``class_map`` from its
``map_to_binary.py``) onto the 2.18.0 ids, then into the scenario's label space, exactly as the
benchmark maps its references. Dice follows nnU-Net's evaluation, which the benchmark uses: per case
and class, ``None`` when neither label holds the class (excluded from means), 0 when only one does.
A case's mean is the mean over its scored classes; a group's mean the mean over its cases; a group's
per-class value the mean over its cases.

The spine scenario has no second label version (its masks exist once, in TPTBox's tests): its ceiling
is reported as not available, never as 1.

The benchmark report shows the ceiling beside each Dice with::

    ceiling = ceiling_for_dataset(dataset_json)          # None for a dataset that is no synthaug scenario
    group = ceiling.group("mr_c_lower") if ceiling else None
    group.mean, group.per_class["liver"]                 # None where not scored

Example (fetches both releases once)::

    >>> c = label_noise_ceiling("cross-modality")         # doctest: +SKIP
    >>> round(c.group("mr_c_lower").mean, 3)              # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synthaug._validate import check_choice
from synthaug.data.scenarios import Scenario
from synthaug.errors import DataError, LabelError, ValidationError

__all__ = [
    "REFERENCE_VERSION",
    "OTHER_VERSION",
    "CaseAgreement",
    "GroupCeiling",
    "LabelNoiseCeiling",
    "dice_per_class",
    "relabel_by_name",
    "label_noise_ceiling",
    "ceiling_for_dataset",
    "release_agreement",
    "ceiling_markdown",
]

_PathLike = str | os.PathLike[str]

REFERENCE_VERSION = "2.18.0"
"""The TotalSegmentator release whose labels the scenarios use as reference."""
OTHER_VERSION = "2.10.0"
"""The older release compared with it."""


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


@dataclass(frozen=True)
class CaseAgreement:
    """Per-class Dice between the two label versions on one case (slab).

    ``dice[name]`` is ``None`` when neither version holds the class; ``voxels[name]`` is
    ``(reference voxels, other voxels)``; ``identical`` says whether the two labels agree everywhere.
    """

    case: str
    dice: Mapping[str, float | None]
    voxels: Mapping[str, tuple[int, int]]
    identical: bool

    @property
    def mean(self) -> float | None:
        """Mean Dice over the classes scored in this case (``None`` if none is)."""
        return _mean(list(self.dice.values()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "mean": self.mean,
            "identical": self.identical,
            "dice": dict(self.dice),
            "voxels": {k: list(v) for k, v in self.voxels.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaseAgreement:
        return cls(
            case=str(data["case"]),
            dice={str(k): (None if v is None else float(v)) for k, v in data["dice"].items()},
            voxels={str(k): (int(v[0]), int(v[1])) for k, v in data["voxels"].items()},
            identical=bool(data["identical"]),
        )


@dataclass(frozen=True)
class GroupCeiling:
    """The ceiling of one evaluation group (role ``test`` or ``report``) of a scenario."""

    group: str
    role: str
    cases: tuple[CaseAgreement, ...]

    @property
    def mean(self) -> float | None:
        """Mean over the group's cases of each case's mean Dice (the benchmark's group mean)."""
        return _mean([c.mean for c in self.cases])

    @property
    def per_class(self) -> dict[str, float | None]:
        """Class name -> mean Dice over the cases that score it (``None`` if none does)."""
        names = list(self.cases[0].dice) if self.cases else []
        return {n: _mean([c.dice.get(n) for c in self.cases]) for n in names}

    @property
    def identical(self) -> bool:
        """Whether both label versions are identical on every case of the group (a trivial ceiling of 1)."""
        return bool(self.cases) and all(c.identical for c in self.cases)

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "role": self.role,
            "mean": self.mean,
            "identical": self.identical,
            "per_class": self.per_class,
            "cases": [c.to_dict() for c in self.cases],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroupCeiling:
        return cls(
            group=str(data["group"]),
            role=str(data["role"]),
            cases=tuple(CaseAgreement.from_dict(c) for c in data["cases"]),
        )


@dataclass(frozen=True)
class LabelNoiseCeiling:
    """Agreement of two label versions on every evaluation group of a scenario, or why there is none.

    ``available`` is ``False`` when the scenario's labels exist in one version only; ``reason`` then
    says why and ``groups`` is empty.
    """

    scenario: str
    label_space: str
    available: bool
    reason: str
    reference: str
    other: str
    classes: tuple[str, ...]
    groups: tuple[GroupCeiling, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.available and not self.reason:
            raise ValidationError(f"LabelNoiseCeiling {self.scenario!r}: a missing ceiling needs a reason.")

    def group(self, name: str) -> GroupCeiling | None:
        """The ceiling of evaluation group ``name`` (``None`` when not available or no such group)."""
        for g in self.groups:
            if g.group == name:
                return g
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "label_space": self.label_space,
            "available": self.available,
            "reason": self.reason,
            "reference": self.reference,
            "other": self.other,
            "classes": list(self.classes),
            "groups": [g.to_dict() for g in self.groups],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelNoiseCeiling:
        """Inverse of :meth:`to_dict` (e.g. a committed ``label_noise_ceiling.json`` entry)."""
        try:
            return cls(
                scenario=str(data["scenario"]),
                label_space=str(data["label_space"]),
                available=bool(data["available"]),
                reason=str(data["reason"]),
                reference=str(data["reference"]),
                other=str(data["other"]),
                classes=tuple(str(c) for c in data["classes"]),
                groups=tuple(GroupCeiling.from_dict(g) for g in data["groups"]),
            )
        except (KeyError, TypeError, IndexError) as exc:
            raise ValidationError(f"LabelNoiseCeiling.from_dict: malformed record ({exc!r}).") from exc


# ------------------------------------------------------------------------------------ computing


def dice_per_class(
    reference: np.ndarray, other: np.ndarray, n_labels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dice of every label id ``0..n_labels-1`` between two integer label arrays (one pass, no loop).

    Returns ``(dice, reference voxels, other voxels)``, each of length ``n_labels``; ``dice`` is NaN for
    ids that neither array holds.

    >>> d, _, _ = dice_per_class(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 4)
    >>> [round(float(x), 3) if x == x else None for x in d]
    [1.0, 0.667, 0.667, None]
    """
    a, b = np.asarray(reference), np.asarray(other)
    if a.shape != b.shape:
        raise ValidationError(f"reference shape {a.shape} and other shape {b.shape} differ.")
    for name, x in (("reference", a), ("other", b)):
        if not np.issubdtype(x.dtype, np.integer):
            raise LabelError(f"{name} must hold integer label ids, got dtype {x.dtype}.")
        if x.size and (x.min() < 0 or x.max() >= n_labels):
            raise LabelError(f"{name} holds label ids outside 0..{n_labels - 1}.")
    pairs = a.astype(np.int64).ravel() * n_labels + b.astype(np.int64).ravel()
    confusion = np.bincount(pairs, minlength=n_labels * n_labels).reshape(n_labels, n_labels)
    ref_sum, other_sum = confusion.sum(axis=1), confusion.sum(axis=0)
    denom = ref_sum + other_sum
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(denom > 0, 2.0 * np.diag(confusion) / denom, np.nan)
    return dice, ref_sum, other_sum


def relabel_by_name(
    label: np.ndarray, from_names: Mapping[int, str], to_names: Mapping[int, str]
) -> np.ndarray:
    """Renumber ``label`` from one class map to another by class name (background 0 stays 0).

    A class of ``from_names`` present in ``label`` but missing from ``to_names`` raises :class:`LabelError`.
    """
    array = np.asarray(label)
    target = {name: i for i, name in to_names.items()}
    present = sorted(set(np.unique(array).tolist()) - {0})
    unknown = [v for v in present if v not in from_names]
    if unknown:
        raise LabelError(f"label holds id(s) {unknown[:10]} that its class map does not name.")
    missing = sorted({from_names[v] for v in present} - set(target))
    if missing:
        raise LabelError(
            f"class(es) {missing[:10]} of the source class map do not exist in the target class map; the two "
            "releases do not label the same classes, so their labels cannot be compared by name."
        )
    table = np.zeros(max([0, *from_names]) + 1, dtype=np.int64)
    for label_id, name in from_names.items():
        table[label_id] = target.get(name, 0)
    return table[array].astype(array.dtype, copy=False)


def _pair(subject: str, cache_dir: _PathLike | None) -> tuple[Any, np.ndarray]:
    """(reference subject, the other release's label renumbered to the reference's ids)."""
    from synthaug.data.subjects import load_subject

    ref = load_subject(subject, cache_dir=cache_dir, totalseg_version=REFERENCE_VERSION)
    other = load_subject(subject, cache_dir=cache_dir, totalseg_version=OTHER_VERSION)
    if ref.image.shape != other.image.shape or not (
        np.array_equal(ref.image, other.image) and np.allclose(ref.affine, other.affine)
    ):
        raise DataError(
            f"Subject {subject!r}: the TotalSegmentator {REFERENCE_VERSION} and {OTHER_VERSION} images differ; their "
            "labels cannot be compared voxel by voxel. Delete both cache folders and fetch again."
        )
    return ref, relabel_by_name(other.label, other.class_names, ref.class_names)


def _not_available(scenario: Scenario, reason: str) -> LabelNoiseCeiling:
    from synthaug.data.scenarios import scenario_vocabulary

    return LabelNoiseCeiling(
        scenario=scenario.name,
        label_space=scenario.label_space,
        available=False,
        reason=reason,
        reference="",
        other="",
        classes=tuple(scenario_vocabulary(scenario).names[1:]),
    )


def label_noise_ceiling(scenario: str | Scenario, *, cache_dir: _PathLike | None = None) -> LabelNoiseCeiling:
    """The label-noise ceiling of every evaluation group (``test`` and ``report``) of ``scenario``.

    Args:
        scenario: a name from :func:`synthaug.data.scenarios.list_scenarios` or a
            :class:`~synthaug.data.scenarios.Scenario` (its exact slabs and label space are used).
        cache_dir: cache root (default :func:`synthaug.data.cache.cache_root`).

    Scenarios whose evaluation subjects are not TotalSegmentator subjects get ``available=False``.
    """
    from synthaug.data.scenarios import get_scenario, map_labels, scenario_vocabulary
    from synthaug.data.subjects import TOTALSEG_SUBJECTS, load_subject, totalseg_label_source

    if isinstance(scenario, str):
        scenario = get_scenario(scenario, loader=lambda n: load_subject(n, cache_dir=cache_dir))
    if not isinstance(scenario, Scenario):
        raise ValidationError(
            f"scenario must be a scenario name or a Scenario, got {type(scenario).__name__}."
        )
    evaluated = [c for c in scenario.cases if c.role in ("test", "report")]
    foreign = sorted({c.subject for c in evaluated} - set(TOTALSEG_SUBJECTS))
    if foreign:
        return _not_available(
            scenario,
            f"not available: the labels of {', '.join(foreign)} exist in one version only (no second release labels "
            "the same images offline), so no label-noise ceiling can be measured; it is not 1.",
        )
    vocab = scenario_vocabulary(scenario)
    names = vocab.names[1:]
    mapped: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for subject in sorted({c.subject for c in evaluated}):
        ref, other_label = _pair(subject, cache_dir)
        mapped[subject] = (
            map_labels(ref.label, ref, scenario.label_space),
            map_labels(other_label, ref, scenario.label_space),
        )
    groups = []
    for group in scenario.groups:
        cases = []
        for case in (c for c in evaluated if c.group == group):
            ref_label, other_label = (m[:, :, case.z_slice] for m in mapped[case.subject])
            dice, ref_sum, other_sum = dice_per_class(ref_label, other_label, vocab.n_labels)
            cases.append(
                CaseAgreement(
                    case=case.id,
                    dice={
                        n: (None if math.isnan(dice[i]) else float(dice[i])) for i, n in enumerate(names, 1)
                    },
                    voxels={n: (int(ref_sum[i]), int(other_sum[i])) for i, n in enumerate(names, 1)},
                    identical=bool(np.array_equal(ref_label, other_label)),
                )
            )
        role = next(c.role for c in evaluated if c.group == group)
        groups.append(GroupCeiling(group=group, role=role, cases=tuple(cases)))
    return LabelNoiseCeiling(
        scenario=scenario.name,
        label_space=scenario.label_space,
        available=True,
        reason="",
        reference=totalseg_label_source(REFERENCE_VERSION),
        other=totalseg_label_source(OTHER_VERSION),
        classes=tuple(names),
        groups=tuple(groups),
    )


def ceiling_for_dataset(
    dataset_json: Mapping[str, Any], *, cache_dir: _PathLike | None = None
) -> LabelNoiseCeiling | None:
    """The ceiling of an exported synthaug scenario dataset, on exactly the cases its ``dataset.json`` lists.

    Returns ``None`` for a dataset that was not exported from a synthaug scenario (no ``synthaug`` block).
    """
    from synthaug.data.scenarios import Case

    meta = dataset_json.get("synthaug") if isinstance(dataset_json, Mapping) else None
    if not isinstance(meta, Mapping) or "scenario" not in meta:
        return None
    try:
        cases = tuple(
            Case(str(c["subject"]), int(c["z_start"]), int(c["z_stop"]), c["role"], str(c["group"]),
                 normalization=c.get("normalization", "CT"))
            for c in meta["cases"]
        )  # fmt: skip
        scenario = Scenario(
            name=str(meta["scenario"]),
            description="",
            cases=cases,
            label_space=meta.get("label_space", "superclass"),
        )
    except (KeyError, TypeError) as exc:
        raise DataError(
            f"dataset.json 'synthaug' block is malformed ({exc!r}); re-export the dataset."
        ) from exc
    return label_noise_ceiling(scenario, cache_dir=cache_dir)


def release_agreement(subject: str, *, cache_dir: _PathLike | None = None) -> CaseAgreement:
    """Whole-volume Dice of the two releases on ``subject`` in its native TotalSegmentator classes."""
    from synthaug.data.subjects import TOTALSEG_SUBJECTS

    check_choice("subject", subject, TOTALSEG_SUBJECTS)
    ref, other_label = _pair(subject, cache_dir)
    n = max(ref.class_names) + 1
    dice, ref_sum, other_sum = dice_per_class(ref.label, other_label, n)
    names = ref.class_names
    return CaseAgreement(
        case=subject,
        dice={names[i]: (None if math.isnan(dice[i]) else float(dice[i])) for i in sorted(names)},
        voxels={names[i]: (int(ref_sum[i]), int(other_sum[i])) for i in sorted(names)},
        identical=bool(np.array_equal(ref.label, other_label)),
    )


# ------------------------------------------------------------------------------------ reporting


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def ceiling_markdown(
    ceilings: Sequence[LabelNoiseCeiling],
    native: Sequence[CaseAgreement] = (),
    *,
    command: str,
    date: str,
    machine: str,
    commit: str,
) -> str:
    """A results page: per scenario and group, mean and per-class Dice between the two label versions."""
    lines = [
        "# Label-noise ceiling of the benchmark references",
        "",
        f"Date: {date}. Machine: {machine}. Commit: `{commit}`.",
        "",
        f"Command: `{command}`",
        "",
        f"The references of the TotalSegmentator scenarios are model predictions (TotalSegmentator {REFERENCE_VERSION}). "
        f"TotalSegmentator {OTHER_VERSION} ships the same images (byte-identical, checked at fetch) with the labels its "
        "older models predicted. The table gives the Dice between the two label versions on the same slabs and classes "
        "the benchmark scores (nnU-Net's Dice: a class in neither version is not scored; group mean = mean over cases "
        "of each case's mean over scored classes). Two TotalSegmentator releases already disagree by 1 - ceiling, so "
        "near the ceiling, Dice differences of that size between arms are within the references' own label noise. "
        "CT A, the training subject of the TotalSegmentator scenarios, is labelled identically by both releases, so "
        "only the test labels carry release-to-release noise.",
        "",
    ]
    for c in ceilings:
        lines += [f"## {c.scenario} ({c.label_space} labels)", ""]
        if not c.available:
            lines += [f"Ceiling: **{c.reason}**", ""]
            continue
        header = "| group | role | cases | mean Dice | " + " | ".join(c.classes) + " |"
        lines += [header, "|" + "---|" * (4 + len(c.classes))]
        for g in c.groups:
            per = g.per_class
            lines.append(
                f"| {g.group} | {g.role} | {len(g.cases)} | {_fmt(g.mean)} | "
                + " | ".join(_fmt(per.get(n)) for n in c.classes)
                + " |"
            )
        notes = []
        for g in c.groups:
            if g.identical:
                notes.append(
                    f"- {g.group}: both releases label these slabs identically (voxel for voxel), so the ceiling of 1 "
                    "is trivial: there is no second opinion to measure label noise with."
                )
            unscored = [n for n, v in g.per_class.items() if v is None]
            if unscored:
                notes.append(f"- {g.group}: not scored (in neither label version): {', '.join(unscored)}.")
        lines += ["", *notes, *([""] if notes else [])]
    if native:
        lines += [
            "## Whole volumes, native TotalSegmentator classes",
            "",
            "| subject | classes scored | mean Dice | identical |",
            "|---|---|---|---|",
        ]
        for a in native:
            scored = sum(v is not None for v in a.dice.values())
            lines.append(f"| {a.case} | {scored} | {_fmt(a.mean)} | {'yes' if a.identical else 'no'} |")
        lines.append("")
    return "\n".join(lines)
