"""Named benchmark scenarios built from the open subjects: typed cases with a role, and a leakage guard.

Each open subject is a single volume, so a *case* is a slab of consecutive axial slices (axis 2, inferior
to superior) of one subject. Labels are TotalSegmentator model predictions (not manual ground truth),
mapped to the shared organ vocabulary or its super-classes so CT-trained models can be scored on MR.

Scenarios (``list_scenarios()``):

- ``cross-modality``: train on CT A slabs; test on the lower half of MR C (group ``mr_c_lower``). The upper
  half of MR C is reserved for generator training (role ``generator``: unpaired MR images) and is never a
  test case. All slices of MR C are reported separately as role ``report`` (group ``mr_c_all``): that group
  includes the generator slices, so it is not a held-out test and is absent from ``test_case_ids()``.
- ``cross-scanner``: train on CT A slabs; test on CT B (group ``ct_b``).
- ``in-domain``: train on CT A slabs below a held-out superior slab of A (group ``ct_a_heldout``), separated
  from it by ``gap_slices`` slices to limit leakage through neighbouring slices.
- ``spine-cross-modality``: train on slabs of the TPTBox spine CT (``spine_ct``); test on the whole TPTBox
  spine T2w MR (``spine_mr``, group ``spine_mr``), label space ``spine`` (:mod:`synthaug.data.spine`). CT and
  MR are different subjects at different levels: the masks label the CT vertebrae L2-L4 and the MR vertebrae
  C5-C7 (the MR bodies measure like the CT's lumbar ones, so its numbering may be arbitrary; the scenario
  relies on the subregion classes only). The MR is one 52-slice volume tested whole: a 2D model predicts
  slice by slice anyway, and slabs would leave classes absent from some test cases. The labels are the
  masks shipped with TPTBox's tests, not TotalSegmentator predictions; how they were made is not stated.

Roles: ``train`` (segmentation training), ``test`` (held-out evaluation), ``report`` (reported separately,
not held out), ``generator`` (images a generator may train on; never labels, never test).

Example::

    >>> sc = get_scenario("in-domain")                                    # doctest: +SKIP
    >>> check_no_overlap(sc.train_case_ids(), sc.test_case_ids())         # doctest: +SKIP
    >>> for case, image, label, affine in build_cases(sc): ...            # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from synthaug._validate import check_choice, closest
from synthaug.data.scenario_names import LABEL_SPACES, SCENARIO_DESCRIPTIONS, SCENARIO_LABEL_SPACES
from synthaug.errors import LabelError, LeakageError, ValidationError

__all__ = [
    "LABEL_NOTE",
    "SPINE_LABEL_NOTE",
    "LABEL_SPACES",
    "ROLES",
    "Case",
    "Scenario",
    "list_scenarios",
    "get_scenario",
    "build_cases",
    "map_labels",
    "scenario_vocabulary",
    "check_no_overlap",
    "check_shared_classes",
]

Role = Literal["train", "test", "report", "generator"]
LabelSpace = Literal["superclass", "shared", "spine"]
Normalization = Literal["CT", "zscore"]
SubjectLoader = Callable[[str], Any]
LabelMapper = Callable[[np.ndarray, Any, str], np.ndarray]

ROLES: tuple[str, ...] = ("train", "test", "report", "generator")
NORMALIZATIONS: tuple[str, ...] = ("CT", "zscore")
LABEL_NOTE = "Labels are TotalSegmentator model predictions, not manual ground truth."
SPINE_LABEL_NOTE = (
    "Labels are the vertebra-subregion masks shipped with TPTBox 1.1.0's tests (how they were made is not "
    "stated; not known to be manual ground truth), mapped to the synthaug spine vocabulary."
)
TOTALSEG_REFERENCE = (
    "Images: open sample volumes distributed with TotalSegmentator (Wasserthal et al., Radiology: AI 2023). "
    "Labels: TotalSegmentator model predictions, not manual ground truth. Exported by synthaug."
)
TPTBOX_REFERENCE = (
    "Images and masks: test data of the TPTBox 1.1.0 wheel (pip install tptbox==1.1.0; its LICENSE file says "
    "Apache-2.0, its classifier says proprietary, the origin of the scans is not stated). Fetched by the user's "
    "own pip, never redistributed by synthaug. Exported by synthaug."
)

_DESCRIPTIONS = SCENARIO_DESCRIPTIONS
_SCENARIO_LABEL_SPACES = SCENARIO_LABEL_SPACES
_ID_PATTERN = re.compile(r"^(?P<subject>.+)_z(?P<start>\d{3,})-(?P<last>\d{3,})$")


def _short(subject: str) -> str:
    """``ct_a`` -> ``ctA`` (the subject part of case ids)."""
    head, *rest = subject.split("_")
    return head + "".join(p.upper() if len(p) == 1 else p.capitalize() for p in rest)


@dataclass(frozen=True)
class Case:
    """A slab ``z_start <= z < z_stop`` of one subject with its role and report group."""

    subject: str
    z_start: int
    z_stop: int
    role: Role
    group: str
    normalization: Normalization = "CT"

    def __post_init__(self) -> None:
        check_choice("Case.role", self.role, ROLES)
        check_choice("Case.normalization", self.normalization, NORMALIZATIONS)
        if not (0 <= self.z_start < self.z_stop):
            raise ValidationError(
                f"Case needs 0 <= z_start < z_stop, got z_start={self.z_start}, z_stop={self.z_stop}."
            )

    @property
    def id(self) -> str:
        """Stable id, e.g. ``ctA_z000-015`` (inclusive slice range)."""
        return f"{_short(self.subject)}_z{self.z_start:03d}-{self.z_stop - 1:03d}"

    @property
    def z_slice(self) -> slice:
        return slice(self.z_start, self.z_stop)

    @property
    def n_slices(self) -> int:
        return self.z_stop - self.z_start

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subject": self.subject,
            "z_start": self.z_start,
            "z_stop": self.z_stop,
            "role": self.role,
            "group": self.group,
            "normalization": self.normalization,
        }


@dataclass(frozen=True)
class Scenario:
    """A named benchmark split. Train, generator and test cases are checked to be disjoint on creation.

    All cases share one ``normalization`` (the nnU-Net channel name of the dataset they form): ``"CT"``
    for CT-only scenarios, ``"zscore"`` when test images are MR. A scenario needs at least one ``test``
    case. ``note`` says what the labels are; ``reference`` credits the data (both go into ``dataset.json``).
    """

    name: str
    description: str
    cases: tuple[Case, ...]
    label_space: LabelSpace = "superclass"
    slab_slices: int = 16
    gap_slices: int = 4
    note: str = field(default=LABEL_NOTE)
    reference: str = field(default=TOTALSEG_REFERENCE)

    def __post_init__(self) -> None:
        check_choice("label_space", self.label_space, LABEL_SPACES)
        if not self.cases:
            raise ValidationError(f"Scenario {self.name!r} has no cases.")
        norms = sorted({c.normalization for c in self.cases})
        if len(norms) > 1:
            raise ValidationError(
                f"Scenario {self.name!r} mixes case normalizations {norms}; one dataset has one channel "
                "normalization. Give every case the same normalization ('zscore' if any test image is MR)."
            )
        ids = [c.id for c in self.cases]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValidationError(
                f"Scenario {self.name!r} repeats case id(s) {dupes}; case ids must be unique."
            )
        if not self.test_case_ids():
            raise ValidationError(
                f"Scenario {self.name!r} has no test case (0 test volumes): a benchmark scores held-out volumes. "
                "Give at least one case role='test'."
            )
        check_no_overlap(self.train_case_ids(), self.test_case_ids())
        check_no_overlap(self.generator_case_ids(), self.test_case_ids(), what="generator-training")

    @property
    def normalization(self) -> Normalization:
        """The channel normalization shared by all cases (``"CT"`` or ``"zscore"``)."""
        return self.cases[0].normalization

    def cases_with(self, role: str | None = None, group: str | None = None) -> tuple[Case, ...]:
        if role is not None:
            check_choice("role", role, ROLES)
        return tuple(
            c for c in self.cases if (role is None or c.role == role) and (group is None or c.group == group)
        )

    def train_case_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.cases_with("train"))

    def test_case_ids(self) -> tuple[str, ...]:
        """Held-out test cases only (not the ``report`` group; see the module docstring)."""
        return tuple(c.id for c in self.cases_with("test"))

    def report_case_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.cases_with("report"))

    def generator_case_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.cases_with("generator"))

    @property
    def groups(self) -> dict[str, tuple[str, ...]]:
        """Evaluation groups (test and report) -> case ids, in case order."""
        out: dict[str, list[str]] = {}
        for c in self.cases:
            if c.role in ("test", "report"):
                out.setdefault(c.group, []).append(c.id)
        return {k: tuple(v) for k, v in out.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "normalization": self.normalization,
            "label_space": self.label_space,
            "slab_slices": self.slab_slices,
            "gap_slices": self.gap_slices,
            "note": self.note,
            "reference": self.reference,
            "groups": {k: list(v) for k, v in self.groups.items()},
            "cases": [c.to_dict() for c in self.cases],
        }


# ------------------------------------------------------------------------------------ leakage guard


def slab_case_id(subject: str, start: int, stop: int) -> str:
    """The one case-id format of synthaug: ``ct_a``, slices 0..15 -> ``ctA_z000-015`` (inclusive last).

    Scenarios, model cards (``training_cases``) and the benchmark's leakage checks all use it.
    """
    return f"{_short(subject)}_z{start:03d}-{stop - 1:03d}"


def parse_case_id(case: str) -> tuple[str, int, int]:
    """``"ctA_z000-015"`` -> ("ctA", 0, 16) (stop exclusive); other ids -> (id, 0, 0)."""
    _, subject, lo, hi = _parse(case)
    return subject, lo, hi + 1


def _parse(case: str | Case) -> tuple[str, str, int, int]:
    """(id, subject key, first z, last z); ids that are not ``<subject>_zAAA-BBB`` match only themselves."""
    cid = case.id if isinstance(case, Case) else str(case)
    m = _ID_PATTERN.match(cid)
    if m is None:
        return cid, cid, 0, -1
    return cid, m["subject"], int(m["start"]), int(m["last"])


def check_no_overlap(
    train_ids: Iterable[str | Case], test_ids: Iterable[str | Case], *, what: str = "training"
) -> None:
    """Raise :class:`LeakageError` if a test case shares a subject and any slice with a training case.

    Ids of the form ``<subject>_zAAA-BBB`` overlap when their subjects match and their inclusive slice
    ranges intersect; other ids overlap only when equal.
    """
    train = [_parse(t) for t in train_ids]
    clashes = []
    for tid, subject, lo, hi in (_parse(t) for t in test_ids):
        for rid, rsubject, rlo, rhi in train:
            same = (tid == rid) if hi < 0 or rhi < 0 else (subject == rsubject and lo <= rhi and rlo <= hi)
            if same:
                clashes.append(f"{tid} ~ {rid}")
    if clashes:
        shown = ", ".join(clashes[:5]) + (f" (+{len(clashes) - 5} more)" if len(clashes) > 5 else "")
        raise LeakageError(
            f"{len(clashes)} test case(s) overlap {what} case(s) (same subject and shared slices): {shown}. "
            f"Remove the overlapping slabs from the {what} set, or use a scenario whose test cases are disjoint."
        )


# ------------------------------------------------------------------------------------ building


def _default_loader() -> SubjectLoader:
    from synthaug.data.subjects import load_subject

    return load_subject


def _slabs(start: int, stop: int, slab: int, role: Role, subject: str, group: str) -> list[Case]:
    """Split ``[start, stop)`` into consecutive slabs of about ``slab`` slices (nearly equal thickness)."""
    n = stop - start
    if n < 1:
        return []
    k = max(1, int(round(n / slab)))
    bounds = np.linspace(start, stop, k + 1).round().astype(int)
    return [Case(subject, int(a), int(b), role, group) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _half(subject: Any, part: str) -> slice:
    from synthaug.data.subjects import slab_indices

    return slab_indices(subject, part, axis=2)


def list_scenarios() -> tuple[str, ...]:
    """Names accepted by :func:`get_scenario`."""
    return tuple(_DESCRIPTIONS)


def get_scenario(
    name: str,
    *,
    slab_slices: int = 16,
    gap_slices: int = 4,
    label_space: LabelSpace | None = None,
    loader: SubjectLoader | None = None,
) -> Scenario:
    """The scenario called ``name`` (see :func:`list_scenarios`).

    Subjects are loaded (``loader``, default ``synthaug.data.subjects.load_subject``) to know their slice
    counts and modalities. ``slab_slices`` is the training slab thickness, ``gap_slices`` the slices left
    out between the in-domain training slabs and the held-out slab. ``label_space`` defaults to the
    scenario's own (``superclass`` for the TotalSegmentator scenarios, ``spine`` for
    ``spine-cross-modality``); a label space the scenario's labels cannot be mapped to is refused.
    """
    if name not in _DESCRIPTIONS:
        raise ValidationError(
            f"Unknown scenario {name!r}; known: {list(_DESCRIPTIONS)}.{closest(str(name), _DESCRIPTIONS)}"
        )
    for pname, value, low in (("slab_slices", slab_slices, 1), ("gap_slices", gap_slices, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValidationError(f"{pname} must be an int >= {low}, got {value!r}.")
    accepted = _SCENARIO_LABEL_SPACES[name]
    space = accepted[0] if label_space is None else check_choice("label_space", label_space, LABEL_SPACES)
    if space not in accepted:
        raise ValidationError(
            f"Scenario {name!r} cannot use label_space={space!r}: its labels map only to {list(accepted)}. "
            f"Leave label_space out (default {accepted[0]!r})."
        )
    load = loader or _default_loader()
    note, reference = LABEL_NOTE, TOTALSEG_REFERENCE
    if name == "spine-cross-modality":
        cases, modalities = _spine_cases(load, slab_slices)
        note, reference = SPINE_LABEL_NOTE, TPTBOX_REFERENCE
    else:
        cases, modalities = _totalseg_cases(name, load, slab_slices, gap_slices)
    normalization: Normalization = "CT" if all(m == "CT" for m in modalities) else "zscore"
    return Scenario(
        name=name,
        description=_DESCRIPTIONS[name],
        cases=tuple(dataclasses.replace(c, normalization=normalization) for c in cases),
        label_space=space,  # type: ignore[arg-type]
        slab_slices=slab_slices,
        gap_slices=gap_slices,
        note=note,
        reference=reference,
    )


def _spine_cases(load: SubjectLoader, slab_slices: int) -> tuple[list[Case], list[str]]:
    """Train: slabs of ``spine_ct`` along axis 2; test: the whole ``spine_mr`` volume."""
    ct, mr = load("spine_ct"), load("spine_mr")
    cases = _slabs(0, int(ct.image.shape[2]), slab_slices, "train", "spine_ct", "spine_ct_train")
    cases.append(Case("spine_mr", 0, int(mr.image.shape[2]), "test", "spine_mr"))
    return cases, [ct.modality, mr.modality]


def _totalseg_cases(
    name: str, load: SubjectLoader, slab_slices: int, gap_slices: int
) -> tuple[list[Case], list[str]]:
    ct_a = load("ct_a")
    n_a = int(ct_a.image.shape[2])
    cases: list[Case] = []
    if name == "in-domain":
        held = min(slab_slices, n_a)
        train_stop = n_a - held - gap_slices
        if train_stop < 1:
            raise ValidationError(
                f"in-domain: CT A has {n_a} slices, too few for a held-out slab of slab_slices={slab_slices} plus "
                f"gap_slices={gap_slices} and a training slab. Use a smaller slab_slices or gap_slices."
            )
        cases += _slabs(0, train_stop, slab_slices, "train", "ct_a", "ct_a_train")
        cases.append(Case("ct_a", n_a - held, n_a, "test", "ct_a_heldout"))
        return cases, [ct_a.modality]
    cases += _slabs(0, n_a, slab_slices, "train", "ct_a", "ct_a_train")
    if name == "cross-scanner":
        ct_b = load("ct_b")
        cases.append(Case("ct_b", 0, int(ct_b.image.shape[2]), "test", "ct_b"))
        return cases, [ct_a.modality, ct_b.modality]
    mr_c = load("mr_c")  # cross-modality
    lower, upper = _half(mr_c, "lower"), _half(mr_c, "upper")
    n_c = int(mr_c.image.shape[2])
    cases.append(Case("mr_c", lower.start or 0, lower.stop, "test", "mr_c_lower"))
    cases.append(Case("mr_c", 0, n_c, "report", "mr_c_all"))
    cases.append(
        Case("mr_c", upper.start, upper.stop if upper.stop is not None else n_c, "generator", "mr_c_upper")
    )
    return cases, [ct_a.modality, mr_c.modality]


def _vocab_source(subject: Any) -> str:
    src = str(getattr(subject, "label_source", ""))
    if src in ("total", "total_mr"):
        return src
    return "total_mr" if getattr(subject, "modality", "CT") == "MR" else "total"


def _is_spine(subject: Any) -> bool:
    from synthaug.data.subjects import TPTBOX_LABEL_SOURCE

    return str(getattr(subject, "label_source", "")) == TPTBOX_LABEL_SOURCE


def map_labels(label: np.ndarray, subject: Any, label_space: str) -> np.ndarray:
    """Map a subject's labels to the scenario label space (int16).

    TotalSegmentator labels go to the shared vocabulary or its super-classes; TPTBox spine subregion masks
    to the spine vocabulary (:func:`synthaug.data.spine.to_spine`). Any other pairing raises
    :class:`LabelError`: the ids of one label family mean other things in the other.
    """
    from synthaug.data.spine import to_spine
    from synthaug.data.vocabulary import to_shared, to_superclasses

    check_choice("label_space", label_space, LABEL_SPACES)
    spine = _is_spine(subject)
    if spine != (label_space == "spine"):
        name = getattr(subject, "name", "?")
        raise LabelError(
            f"Subject {name!r} has {'TPTBox spine subregion' if spine else 'TotalSegmentator'} labels, which do not "
            f"map to label_space={label_space!r}; use {'spine' if spine else 'superclass or shared'}."
        )
    if spine:
        return np.asarray(to_spine(label, subject.modality)).astype(np.int16, copy=False)
    shared = np.asarray(to_shared(label, _vocab_source(subject)))
    out = shared if label_space == "shared" else np.asarray(to_superclasses(shared))
    return out.astype(np.int16, copy=False)


def scenario_vocabulary(scenario: Scenario | str) -> Any:
    """The ``LabelVocabulary`` of the scenario's label space (index 0 background)."""
    from synthaug.data.spine import spine_vocabulary
    from synthaug.data.vocabulary import shared_vocabulary, superclass_vocabulary

    space = scenario.label_space if isinstance(scenario, Scenario) else scenario
    check_choice("label_space", space, LABEL_SPACES)
    return {"superclass": superclass_vocabulary, "shared": shared_vocabulary, "spine": spine_vocabulary}[space]()


def check_shared_classes(
    scenario: Scenario, present: Mapping[str, Iterable[int]], names: Sequence[str]
) -> None:
    """Raise :class:`LabelError` when an evaluation group shares no foreground class with the training cases.

    ``present`` maps case ids to the label ids their labels hold; ``names`` are the class names by id.
    A test (or report) group whose classes the training labels never show cannot measure transfer: every
    Dice there would be 0 whatever the augmentation.
    """
    def label(ids: set[int]) -> list[str]:
        return [names[i] if 0 <= i < len(names) else str(i) for i in sorted(ids)]

    def foreground(ids: Iterable[str]) -> set[int]:
        return {int(v) for c in ids if c in present for v in present[c]} - {0}

    train = foreground(scenario.train_case_ids())
    for group, ids in scenario.groups.items():
        test = foreground(ids)
        if not train & test:
            raise LabelError(
                f"Scenario {scenario.name!r}: the training cases hold the classes {label(train)} and the evaluation "
                f"group {group!r} holds {label(test)}; they share no foreground class, so no Dice there can measure "
                "anything. Map both to a label space they share, or choose test cases that contain a training class."
            )


def build_cases(
    scenario: Scenario | str,
    *,
    roles: Sequence[str] = ("train", "test", "report"),
    loader: SubjectLoader | None = None,
    label_mapper: LabelMapper | None = None,
) -> Iterator[tuple[Case, np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(case, image float32 (X,Y,Z), label int16, affine 4x4)`` for the cases with ``roles``.

    The affine of a slab is the subject's affine shifted to the slab's first slice. ``generator`` cases
    are images a generator may see; their label is still returned for bookkeeping but must not be used
    for training. One subject is held in memory at a time.
    """
    if isinstance(scenario, str):
        scenario = get_scenario(scenario, loader=loader)
    for r in roles:
        check_choice("roles", r, ROLES)
    load = loader or _default_loader()
    mapper = label_mapper or map_labels
    current: tuple[str, np.ndarray, np.ndarray, np.ndarray] | None = None
    for case in scenario.cases:
        if case.role not in roles:
            continue
        if current is None or current[0] != case.subject:
            subject = load(case.subject)
            current = (
                case.subject,
                np.asarray(subject.image, dtype=np.float32),
                np.asarray(mapper(np.asarray(subject.label), subject, scenario.label_space), dtype=np.int16),
                np.asarray(subject.affine, dtype=np.float64),
            )
        _, image, label, affine = current
        n_z = image.shape[2]
        if case.z_stop > n_z:
            raise ValidationError(
                f"Case {case.id} reaches slice {case.z_stop - 1} but subject {case.subject!r} has {n_z} slices; "
                "rebuild the scenario with get_scenario() for the current data."
            )
        shift = np.eye(4)
        shift[2, 3] = case.z_start
        yield (
            case,
            np.ascontiguousarray(image[:, :, case.z_slice]),
            np.ascontiguousarray(label[:, :, case.z_slice]),
            affine @ shift,
        )
