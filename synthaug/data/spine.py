"""Vertebra subregions (TPTBox numbering) and the spine vocabulary a spine CT and a spine MR share.

The spine subjects ``spine_ct`` and ``spine_mr`` (:mod:`synthaug.data.subjects`) come with
vertebra-subregion masks that use the subregion ids of TPTBox (its ``Location`` enumeration in
``TPTBox/core/vert_constants.py``; only the id -> name facts are taken from there):

====  ============================  =====  =====  ==================================
id    TPTBox name                   CT     MR     spine class
====  ============================  =====  =====  ==================================
41    arcus_vertebrae               yes    yes    ``vertebral_arch``
42    spinosus_process              yes    yes    ``spinous_process``
43    costal_process_left           yes    yes    ``transverse_processes``
44    costal_process_right          yes    yes    ``transverse_processes``
45    superior_articular_left       yes    yes    ``superior_articular_processes``
46    superior_articular_right      yes    yes    ``superior_articular_processes``
47    inferior_articular_left       yes    yes    ``inferior_articular_processes``
48    inferior_articular_right      yes    yes    ``inferior_articular_processes``
49    vertebra_corpus_border        yes    yes    ``vertebral_body``
50    vertebra_corpus               yes    no     ``vertebral_body``
62    endplate                      no     yes    ``vertebral_body``
60    spinal_cord                   no     yes    background
61    spinal_canal                  no     yes    background
100   vertebra_disc                 no     yes    background
====  ============================  =====  =====  ==================================

Why these classes:

- **Vertebral body.** The CT mask splits the body into its cortical border (49) and its interior
  (50); the MR mask labels the whole body 49 and a one-voxel endplate layer (62) between the body
  and the disc. The MR vertebra mask assigns the endplate voxels to their vertebra (instance id
  vertebra + 200), and on CT the bony endplate lies inside 49/50, so 62 joins the body: mapping it
  to background would punish a CT-trained model for segmenting the whole body up to the disc.
- **Left and right merged.** Costal (transverse) and articular processes come as left/right pairs;
  they are merged because nnU-Net mirrors images during training without swapping left/right
  labels, which would make separate sides contradict each other.
- **Cord, canal and disc are background.** They are soft tissue the CT mask does not label (the CT
  training labels call those voxels background), so labelling them on MR would score classes the
  training data never shows; mapping them to background keeps both modalities' labels consistent.

The vocabulary (:func:`spine_vocabulary`) is derived from :data:`SPINE_CLASSES` and the ids each
modality's mask holds (:data:`SPINE_SUBREGION_IDS`): a class is kept when both modalities have at
least one of its subregions. :func:`to_spine` maps a mask of either modality onto it.

>>> import numpy as np
>>> spine_vocabulary().names[1:3]
('vertebral_body', 'vertebral_arch')
>>> to_spine(np.array([0, 50, 49, 41, 43, 44]), "CT").tolist()
[0, 1, 1, 2, 4, 4]
>>> to_spine(np.array([0, 49, 62, 41, 100, 61]), "MR").tolist()
[0, 1, 1, 2, 0, 0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

import numpy as np
import torch

from synthaug._validate import check_choice
from synthaug.data.vocabulary import LabelVocabulary, _apply_table
from synthaug.errors import LabelError, ValidationError

__all__ = [
    "TPTBOX_SUBREGIONS",
    "TPTBOX_VERTEBRAE",
    "SPINE_SUBREGION_IDS",
    "SPINE_CLASSES",
    "SPINE_BACKGROUND",
    "SPINE_MODALITIES",
    "spine_class_names",
    "spine_vocabulary",
    "spine_subregion_names",
    "spine_lookup_table",
    "to_spine",
    "vertebra_levels",
]

LabelT = TypeVar("LabelT", np.ndarray, torch.Tensor)

SPINE_MODALITIES: tuple[str, ...] = ("CT", "MR")

TPTBOX_SUBREGIONS: Mapping[int, str] = {
    41: "arcus_vertebrae",
    42: "spinosus_process",
    43: "costal_process_left",
    44: "costal_process_right",
    45: "superior_articular_left",
    46: "superior_articular_right",
    47: "inferior_articular_left",
    48: "inferior_articular_right",
    49: "vertebra_corpus_border",
    50: "vertebra_corpus",
    60: "spinal_cord",
    61: "spinal_canal",
    62: "endplate",
    100: "vertebra_disc",
}
"""TPTBox subregion id -> name (lower-case ``Location`` member names) for the ids the spine masks use."""

SPINE_SUBREGION_IDS: Mapping[str, tuple[int, ...]] = {
    "CT": (41, 42, 43, 44, 45, 46, 47, 48, 49, 50),
    "MR": (41, 42, 43, 44, 45, 46, 47, 48, 49, 60, 61, 62, 100),
}
"""Subregion ids each modality's mask may hold (``spine_ct`` / ``spine_mr``); any other id is refused."""

SPINE_CLASSES: Mapping[str, tuple[str, ...]] = {
    "vertebral_body": ("vertebra_corpus_border", "vertebra_corpus", "endplate"),
    "vertebral_arch": ("arcus_vertebrae",),
    "spinous_process": ("spinosus_process",),
    "transverse_processes": ("costal_process_left", "costal_process_right"),
    "superior_articular_processes": ("superior_articular_left", "superior_articular_right"),
    "inferior_articular_processes": ("inferior_articular_left", "inferior_articular_right"),
}
"""Spine class -> the TPTBox subregions it groups (label id = position + 1 among the shared classes)."""

SPINE_BACKGROUND: tuple[str, ...] = ("spinal_cord", "spinal_canal", "vertebra_disc")
"""Subregions mapped to background (soft tissue the CT mask does not label; see the module docstring)."""


def _vertebra_names() -> dict[int, str]:
    names = {i: f"C{i}" for i in range(1, 8)}
    names.update({7 + i: f"T{i}" for i in range(1, 13)})
    names.update({19 + i: f"L{i}" for i in range(1, 7)})
    names.update({26: "S1", 28: "T13"})
    return names


TPTBOX_VERTEBRAE: Mapping[int, str] = _vertebra_names()
"""TPTBox vertebra instance id -> level: 1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6, 26 S1, 28 T13."""


def _check_modality(modality: str) -> str:
    return check_choice("modality", modality, SPINE_MODALITIES)


def spine_subregion_names(modality: str) -> dict[int, str]:
    """``{subregion id: TPTBox name}`` of the ids ``modality``'s mask may hold (the subject's class map)."""
    return {i: TPTBOX_SUBREGIONS[i] for i in SPINE_SUBREGION_IDS[_check_modality(modality)]}


def spine_class_names() -> tuple[str, ...]:
    """The spine classes both modalities have (at least one member subregion in each), in declaration order."""
    present = {m: set(spine_subregion_names(m).values()) for m in SPINE_MODALITIES}
    return tuple(
        name
        for name, members in SPINE_CLASSES.items()
        if all(present[m] & set(members) for m in SPINE_MODALITIES)
    )


def spine_vocabulary() -> LabelVocabulary:
    """Background + :func:`spine_class_names` (the spine-cross-modality label space)."""
    return LabelVocabulary("spine_subregions", ("background", *spine_class_names()))


def spine_lookup_table(modality: str) -> np.ndarray:
    """int64 table: ``table[subregion id]`` = spine vocabulary id (0 for background subregions).

    Ids ``modality``'s mask cannot hold map to -1; :func:`to_spine` refuses them before looking up.
    """
    vocab = spine_vocabulary()
    target = {member: vocab.index(name) for name, members in SPINE_CLASSES.items() if name in vocab
              for member in members}  # fmt: skip
    table = np.full(max(TPTBOX_SUBREGIONS) + 1, -1, dtype=np.int64)
    table[0] = 0
    for sub_id, name in spine_subregion_names(modality).items():
        if name in target:
            table[sub_id] = target[name]
        elif name in SPINE_BACKGROUND:
            table[sub_id] = 0
        else:
            raise ValidationError(
                f"TPTBox subregion {sub_id} ({name!r}) of {modality} is neither in SPINE_CLASSES nor in "
                "SPINE_BACKGROUND; declare where it goes."
            )
    return table


def _present(label: np.ndarray | torch.Tensor) -> list[int]:
    if isinstance(label, torch.Tensor):
        if label.is_floating_point() or label.is_complex() or label.dtype == torch.bool:
            raise LabelError(f"label must hold integer subregion ids, got dtype {label.dtype}. Use .long().")
        return [int(v) for v in torch.unique(label).tolist()]
    array = np.asarray(label)
    if not np.issubdtype(array.dtype, np.integer):
        raise LabelError(
            f"label must hold integer subregion ids, got dtype {array.dtype}. Use .astype(np.int16)."
        )
    return [int(v) for v in np.unique(array).tolist()]


def to_spine(label: LabelT, modality: str) -> LabelT:
    """Map a TPTBox subregion mask of ``modality`` (``"CT"`` or ``"MR"``) to :func:`spine_vocabulary` ids.

    Keeps the array/tensor type, shape, dtype and device. A value the modality's mask cannot hold
    (e.g. 62 on CT, or a TotalSegmentator id) raises :class:`LabelError` naming it.
    """
    modality = _check_modality(modality)
    allowed = {0, *SPINE_SUBREGION_IDS[modality]}
    unknown = sorted(set(_present(label)) - allowed)
    if unknown:
        raise LabelError(
            f"label holds value(s) {unknown[:10]} that are not {modality} spine subregion ids "
            f"{sorted(allowed - {0})}; is it a TPTBox subregion mask of a {modality} spine subject?"
        )
    return _apply_table(label, spine_lookup_table(modality), "label")


def vertebra_levels(vertebra_mask: np.ndarray | Sequence[int]) -> tuple[str, ...]:
    """Level names (``"L3"``) of the vertebra instance ids in a TPTBox vertebra mask, in id order.

    Disc (id + 100) and endplate (id + 200) instances are not vertebrae and are skipped; an id
    TPTBox does not number raises :class:`LabelError`.
    """
    ids = sorted({int(v) for v in np.unique(np.asarray(vertebra_mask)).tolist()} - {0})
    vertebrae = [i for i in ids if i < 100]
    unknown = [i for i in vertebrae if i not in TPTBOX_VERTEBRAE]
    if unknown:
        raise LabelError(f"vertebra mask holds id(s) {unknown} that TPTBox does not number as vertebrae.")
    return tuple(TPTBOX_VERTEBRAE[i] for i in vertebrae)
