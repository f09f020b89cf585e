"""Label vocabularies: TotalSegmentator CT/MR class maps, the organs both share, and super-classes.

A :class:`LabelVocabulary` is an ordered tuple of class names whose index is the label id (0 is
always ``"background"``); it round-trips through JSON so model cards can store it. The class maps
of TotalSegmentator 2.18.0 (tasks ``"total"`` for CT and ``"total_mr"`` for MR) are pinned here; the
tests check them against ``map_to_binary.py`` of the fetched release.

The shared vocabulary keeps every class both maps have, with CT names merged onto the MR ones:
the five CT lung lobes become ``lung_left``/``lung_right``, the 24 CT vertebrae ``C1``..``L5``
become ``vertebrae``, CT ``vertebrae_S1`` becomes ``sacrum`` (TotalSegmentator's MR vertebrae task
labels sacrum but no S1), and CT kidney cysts become the kidney they lie in. Classes only one
modality has (CT ribs, trachea, thyroid, ...; MR intervertebral discs) map to 0 or ``unmapped``.

>>> import numpy as np
>>> ct = np.array([5, 10, 30, 117])    # liver, a lung lobe, vertebra L2, costal cartilages
>>> to_shared(ct, "total").tolist()
[5, 10, 19, 0]
>>> shared_vocabulary().names[5]
'liver'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from synthaug._validate import check_choice, closest
from synthaug.errors import LabelError, ValidationError

__all__ = [
    "LabelVocabulary",
    "TOTALSEG_CLASSES",
    "SHARED_ORGANS",
    "SUPERCLASSES",
    "shared_vocabulary",
    "superclass_vocabulary",
    "brain_tissue_vocabulary",
    "totalsegmentator_vocabulary",
    "shared_lookup_table",
    "to_shared",
    "to_superclasses",
    "SuperclassEntry",
    "superclass_entries",
    "unmapped_classes",
    "vocabulary_markdown",
]

LabelT = TypeVar("LabelT", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class LabelVocabulary:
    """Ordered class names; the index of a name is its label id and index 0 is ``"background"``.

    >>> v = LabelVocabulary("tissue", ("background", "csf", "gray_matter"))
    >>> v.index("csf"), v.n_labels
    (1, 3)
    >>> LabelVocabulary.from_dict(v.to_dict()) == v
    True
    """

    name: str
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValidationError(f"LabelVocabulary.name must be a non-empty string, got {self.name!r}.")
        names = tuple(self.names)
        object.__setattr__(self, "names", names)
        if not names or names[0] != "background":
            raise ValidationError(
                f"LabelVocabulary {self.name!r}: names[0] must be 'background', got "
                f"{names[0] if names else 'no names'!r}. Put 'background' first (label id 0)."
            )
        bad = [n for n in names if not isinstance(n, str) or not n]
        if bad:
            raise ValidationError(
                f"LabelVocabulary {self.name!r}: every name must be a non-empty string, got {bad[0]!r}."
            )
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValidationError(
                f"LabelVocabulary {self.name!r}: names must be unique, repeated: {duplicates}."
            )

    @property
    def n_labels(self) -> int:
        """Number of labels including background."""
        return len(self.names)

    def index(self, name: str) -> int:
        """Label id of ``name``; unknown names raise :class:`LabelError` with the closest match."""
        try:
            return self.names.index(name)
        except ValueError:
            raise LabelError(
                f"{name!r} is not a class of vocabulary {self.name!r} ({self.n_labels} labels).{closest(str(name), self.names)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def as_dict(self) -> dict[int, str]:
        """``{label id: name}`` without background (the form :class:`~synthaug.data.subjects.Subject` uses)."""
        return {i: n for i, n in enumerate(self.names) if i}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: ``{"name": ..., "names": [...]}``."""
        return {"name": self.name, "names": list(self.names)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelVocabulary:
        """Inverse of :meth:`to_dict`; raises :class:`ValidationError` naming a missing key."""
        if not isinstance(data, Mapping):
            raise ValidationError(f"LabelVocabulary.from_dict needs a mapping, got {type(data).__name__}.")
        missing = [k for k in ("name", "names") if k not in data]
        if missing:
            raise ValidationError(
                f"LabelVocabulary.from_dict: missing key(s) {missing}; expected {{'name': str, 'names': [str, ...]}}."
            )
        names = data["names"]
        if isinstance(names, str) or not isinstance(names, (list, tuple)):
            raise ValidationError(
                f"LabelVocabulary.from_dict: 'names' must be a list of strings, got {names!r}."
            )
        return cls(name=data["name"], names=tuple(names))


# TotalSegmentator 2.18.0 ``class_map`` entries; the name at position i has label id i + 1.
_VERTEBRAE = (
    "S1",
    "L5",
    "L4",
    "L3",
    "L2",
    "L1",
    *(f"T{i}" for i in range(12, 0, -1)),
    *(f"C{i}" for i in range(7, 0, -1)),
)
TOTALSEG_CLASSES: Mapping[str, tuple[str, ...]] = {
    "total": (
        "spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "pancreas",
        "adrenal_gland_right", "adrenal_gland_left", "lung_upper_lobe_left", "lung_lower_lobe_left",
        "lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right", "esophagus", "trachea",
        "thyroid_gland", "small_bowel", "duodenum", "colon", "urinary_bladder", "prostate",
        "kidney_cyst_left", "kidney_cyst_right", "sacrum", *(f"vertebrae_{v}" for v in _VERTEBRAE),
        "heart", "aorta", "pulmonary_vein", "brachiocephalic_trunk", "subclavian_artery_right",
        "subclavian_artery_left", "common_carotid_artery_right", "common_carotid_artery_left",
        "brachiocephalic_vein_left", "brachiocephalic_vein_right", "atrial_appendage_left",
        "superior_vena_cava", "inferior_vena_cava", "portal_vein_and_splenic_vein", "iliac_artery_left",
        "iliac_artery_right", "iliac_vena_left", "iliac_vena_right", "humerus_left", "humerus_right",
        "scapula_left", "scapula_right", "clavicula_left", "clavicula_right", "femur_left", "femur_right",
        "hip_left", "hip_right", "spinal_cord", "gluteus_maximus_left", "gluteus_maximus_right",
        "gluteus_medius_left", "gluteus_medius_right", "gluteus_minimus_left", "gluteus_minimus_right",
        "autochthon_left", "autochthon_right", "iliopsoas_left", "iliopsoas_right", "brain", "skull",
        *(f"rib_left_{i}" for i in range(1, 13)), *(f"rib_right_{i}" for i in range(1, 13)),
        "sternum", "costal_cartilages",
    ),
    "total_mr": (
        "spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "pancreas",
        "adrenal_gland_right", "adrenal_gland_left", "lung_left", "lung_right", "esophagus", "small_bowel",
        "duodenum", "colon", "urinary_bladder", "prostate", "sacrum", "vertebrae", "intervertebral_discs",
        "spinal_cord", "heart", "aorta", "inferior_vena_cava", "portal_vein_and_splenic_vein",
        "iliac_artery_left", "iliac_artery_right", "iliac_vena_left", "iliac_vena_right", "humerus_left",
        "humerus_right", "scapula_left", "scapula_right", "clavicula_left", "clavicula_right", "femur_left",
        "femur_right", "hip_left", "hip_right", "gluteus_maximus_left", "gluteus_maximus_right",
        "gluteus_medius_left", "gluteus_medius_right", "gluteus_minimus_left", "gluteus_minimus_right",
        "autochthon_left", "autochthon_right", "iliopsoas_left", "iliopsoas_right", "brain",
    ),
}  # fmt: skip

_SOURCE_ALIASES = {"ct": "total", "mr": "total_mr"}

# Classes of the shared CT/MR vocabulary, in TotalSegmentator MR order (label id = position + 1).
SHARED_ORGANS: tuple[str, ...] = (
    "spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "pancreas",
    "adrenal_gland_right", "adrenal_gland_left", "lung_left", "lung_right", "esophagus", "small_bowel",
    "duodenum", "colon", "urinary_bladder", "prostate", "sacrum", "vertebrae", "spinal_cord", "heart",
    "aorta", "inferior_vena_cava", "portal_vein_and_splenic_vein", "iliac_artery_left", "iliac_artery_right",
    "iliac_vena_left", "iliac_vena_right", "humerus_left", "humerus_right", "scapula_left", "scapula_right",
    "clavicula_left", "clavicula_right", "femur_left", "femur_right", "hip_left", "hip_right",
    "gluteus_maximus_left", "gluteus_maximus_right", "gluteus_medius_left", "gluteus_medius_right",
    "gluteus_minimus_left", "gluteus_minimus_right", "autochthon_left", "autochthon_right",
    "iliopsoas_left", "iliopsoas_right", "brain",
)  # fmt: skip

# CT class -> shared class, where the names differ.
_CT_TO_SHARED: Mapping[str, str] = {
    "lung_upper_lobe_left": "lung_left",
    "lung_lower_lobe_left": "lung_left",
    "lung_upper_lobe_right": "lung_right",
    "lung_middle_lobe_right": "lung_right",
    "lung_lower_lobe_right": "lung_right",
    "kidney_cyst_left": "kidney_left",
    "kidney_cyst_right": "kidney_right",
    "vertebrae_S1": "sacrum",
    **{f"vertebrae_{v}": "vertebrae" for v in _VERTEBRAE if v != "S1"},
}

# Super-classes (label id = position + 1) and the shared organs each one groups.
SUPERCLASSES: Mapping[str, tuple[str, ...]] = {
    "liver": ("liver", "gallbladder"),
    "spleen": ("spleen",),
    "kidneys": ("kidney_right", "kidney_left", "adrenal_gland_right", "adrenal_gland_left"),
    "gastrointestinal": ("esophagus", "stomach", "duodenum", "small_bowel", "colon", "pancreas"),
    "cardiovascular": (
        "heart", "aorta", "inferior_vena_cava", "portal_vein_and_splenic_vein", "iliac_artery_left",
        "iliac_artery_right", "iliac_vena_left", "iliac_vena_right",
    ),
    "bone": (
        "sacrum", "vertebrae", "humerus_left", "humerus_right", "scapula_left", "scapula_right",
        "clavicula_left", "clavicula_right", "femur_left", "femur_right", "hip_left", "hip_right",
    ),
    "muscle": (
        "gluteus_maximus_left", "gluteus_maximus_right", "gluteus_medius_left", "gluteus_medius_right",
        "gluteus_minimus_left", "gluteus_minimus_right", "autochthon_left", "autochthon_right",
        "iliopsoas_left", "iliopsoas_right",
    ),
    "other_organs": ("lung_left", "lung_right", "urinary_bladder", "prostate", "spinal_cord", "brain"),
}  # fmt: skip


def shared_vocabulary() -> LabelVocabulary:
    """Background + :data:`SHARED_ORGANS` (the classes TotalSegmentator CT and MR both segment)."""
    return LabelVocabulary("totalseg_shared_ct_mr", ("background", *SHARED_ORGANS))


def superclass_vocabulary() -> LabelVocabulary:
    """Background + the :data:`SUPERCLASSES` groups."""
    return LabelVocabulary("totalseg_superclasses", ("background", *SUPERCLASSES))


def brain_tissue_vocabulary() -> LabelVocabulary:
    """Background, CSF, gray matter, white matter (the MNI / simulated brain MR labels)."""
    return LabelVocabulary("brain_tissue", ("background", "csf", "gray_matter", "white_matter"))


def _canonical_source(source: str) -> str:
    if isinstance(source, str) and source.lower() in _SOURCE_ALIASES:
        return _SOURCE_ALIASES[source.lower()]
    return check_choice("source", source, (*TOTALSEG_CLASSES, *_SOURCE_ALIASES))


def totalsegmentator_vocabulary(source: str) -> LabelVocabulary:
    """The full TotalSegmentator 2.18.0 vocabulary of ``source`` (``"total"``/``"ct"`` or ``"total_mr"``/``"mr"``)."""
    key = _canonical_source(source)
    return LabelVocabulary(f"totalseg_{key}", ("background", *TOTALSEG_CLASSES[key]))


def shared_lookup_table(source: str, *, unmapped: int = 0) -> np.ndarray:
    """int64 table: ``table[source label id]`` = shared label id (or ``unmapped``); index 0 -> 0."""
    key = _canonical_source(source)
    shared = {name: i for i, name in enumerate(SHARED_ORGANS, start=1)}
    names = TOTALSEG_CLASSES[key]
    table = np.full(len(names) + 1, unmapped, dtype=np.int64)
    table[0] = 0
    for label_id, name in enumerate(names, start=1):
        target = _CT_TO_SHARED.get(name, name) if key == "total" else name
        if target in shared:
            table[label_id] = shared[target]
    return table


def _superclass_table() -> np.ndarray:
    table = np.zeros(len(SHARED_ORGANS) + 1, dtype=np.int64)
    index = {name: i for i, name in enumerate(SHARED_ORGANS, start=1)}
    for group_id, members in enumerate(SUPERCLASSES.values(), start=1):
        table[[index[m] for m in members]] = group_id
    return table


def _apply_table(label: LabelT, table: np.ndarray, name: str, keep: int | None = None) -> LabelT:
    """``table[label]`` vectorised, keeping the array/tensor type, device and dtype.

    Voxels equal to ``keep`` (an ignore label) pass through unchanged.
    """
    n = len(table)
    if isinstance(label, torch.Tensor):
        if label.is_floating_point() or label.is_complex() or label.dtype == torch.bool:
            raise LabelError(f"{name} must hold integer class ids, got dtype {label.dtype}. Use .long().")
        _check_fits(table, label.dtype, name)
        index = label.long()
        kept = index == keep if keep is not None else None
        if kept is not None:
            index = index.masked_fill(kept, 0)
        if index.numel():
            _check_range(int(index.min()), int(index.max()), n, name)
        out = torch.as_tensor(table, device=label.device)[index]
        if kept is not None:
            out = out.masked_fill(kept, keep)
        return out.to(label.dtype)
    array = np.asarray(label)
    if not np.issubdtype(array.dtype, np.integer):
        raise LabelError(
            f"{name} must hold integer class ids, got dtype {array.dtype}. Use .astype(np.int16)."
        )
    _check_fits(table, array.dtype, name)
    mask = array == keep if keep is not None else None
    index = np.where(mask, 0, array) if mask is not None else array
    if index.size:
        _check_range(int(index.min()), int(index.max()), n, name)
    out = table[index]
    if mask is not None:
        out[mask] = keep
    return out.astype(array.dtype, copy=False)


def _check_range(low: int, high: int, n: int, name: str) -> None:
    if low < 0 or high >= n:
        bad = low if low < 0 else high
        raise LabelError(f"{name} holds label value {bad}, outside the source vocabulary's ids 0..{n - 1}.")


def _check_fits(table: np.ndarray, dtype: Any, name: str) -> None:
    info = torch.iinfo(dtype) if isinstance(dtype, torch.dtype) else np.iinfo(dtype)
    if table.min() < info.min or table.max() > info.max:
        raise ValidationError(
            f"unmapped value {int(table.min()) if table.min() < info.min else int(table.max())} does not fit "
            f"the dtype {dtype} of {name}; convert the label to a wider integer type first."
        )


def to_shared(label: LabelT, source: str, *, unmapped: int = 0) -> LabelT:
    """Map TotalSegmentator ``source`` label ids to :func:`shared_vocabulary` ids.

    Args:
        label: integer numpy array or torch tensor of ``source`` ids (any shape, any device).
        source: ``"total"`` (CT; alias ``"ct"``) or ``"total_mr"`` (MR; alias ``"mr"``).
        unmapped: value for classes outside the shared set (0 = background; or an ignore label).

    Returns the same type, shape, dtype and device. Unknown ids raise :class:`LabelError`.
    """
    if 1 <= unmapped <= len(SHARED_ORGANS):
        raise ValidationError(
            f"unmapped={unmapped} would collide with shared label id {unmapped} "
            f"({SHARED_ORGANS[unmapped - 1]!r}); use 0 (background) or a value outside 1..{len(SHARED_ORGANS)}, "
            "e.g. 255 or -1 as an ignore label."
        )
    return _apply_table(label, shared_lookup_table(source, unmapped=unmapped), "label")


def to_superclasses(shared_label: LabelT, *, ignore_index: int | None = None) -> LabelT:
    """Map :func:`shared_vocabulary` ids to :func:`superclass_vocabulary` ids (same type/dtype/device).

    Voxels equal to ``ignore_index`` (e.g. the ``unmapped`` value given to :func:`to_shared`) are
    kept as they are.

    >>> to_superclasses(np.array([0, 5, 4, 19])).tolist()    # background, liver, gallbladder, vertebrae
    [0, 1, 1, 6]
    """
    if ignore_index is not None and 1 <= ignore_index <= len(SUPERCLASSES):
        raise ValidationError(
            f"ignore_index={ignore_index} collides with a super-class id (1..{len(SUPERCLASSES)}); use a "
            "value outside that range."
        )
    return _apply_table(shared_label, _superclass_table(), "shared_label", keep=ignore_index)


# ------------------------------------------------------------------------------------ description


@dataclass(frozen=True)
class SuperclassEntry:
    """One super-class as ``synthaug data vocabulary`` and the README show it (derived from :data:`SUPERCLASSES`).

    ``organs`` are shared-vocabulary classes; ``ct_sources`` names, for the organs whose CT classes differ,
    the TotalSegmentator CT classes merged into them (e.g. the five lung lobes).
    """

    label_id: int
    name: str
    organs: tuple[str, ...]
    ct_sources: Mapping[str, tuple[str, ...]]


def superclass_entries() -> tuple[SuperclassEntry, ...]:
    """Every super-class with its id, member organs and the CT classes merged into them.

    >>> [e.name for e in superclass_entries()][:3]
    ['liver', 'spleen', 'kidneys']
    """
    merged: dict[str, list[str]] = {}
    for ct, shared in _CT_TO_SHARED.items():
        merged.setdefault(shared, []).append(ct)
    return tuple(
        SuperclassEntry(i, name, members, {o: tuple(merged[o]) for o in members if o in merged})
        for i, (name, members) in enumerate(SUPERCLASSES.items(), start=1)
    )


def unmapped_classes() -> dict[str, tuple[str, ...]]:
    """TotalSegmentator classes outside the shared vocabulary, per task (they map to background)."""
    out = {}
    for key, names in TOTALSEG_CLASSES.items():
        table = shared_lookup_table(key)
        out[key] = tuple(n for i, n in enumerate(names, start=1) if table[i] == 0)
    return out


def _sources(ct: tuple[str, ...]) -> str:
    if len(ct) <= 3:
        return ", ".join(ct)
    return f"{ct[0]} ... {ct[-1]} ({len(ct)} classes)"


def vocabulary_markdown() -> str:
    """The super-class table of the README (a test checks the README holds exactly this text)."""
    lines = [
        "| id | super-class | organs (shared CT/MR classes; CT classes merged into them) |",
        "|---|---|---|",
    ]
    for e in superclass_entries():
        organs = ", ".join(f"{o} (CT: {_sources(e.ct_sources[o])})" if o in e.ct_sources else o for o in e.organs)
        lines.append(f"| {e.label_id} | {e.name} | {organs} |")
    unmapped = unmapped_classes()
    lines.append(f"| 0 | background | everything else, incl. the classes only one modality segments: CT "
                 f"{', '.join(unmapped['total'][:4])} ... ({len(unmapped['total'])} CT classes), MR "
                 f"{', '.join(unmapped['total_mr'])} |")
    return "\n".join(lines) + "\n"
