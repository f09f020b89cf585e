"""The spine vocabulary (synthaug.data.spine) and the TPTBox spine subjects (real data, marker ``data``)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from synthaug.data import sources
from synthaug.data import spine as sp
from synthaug.data.subjects import (
    TPTBOX_LABEL_SOURCE,
    Subject,
    _load_spine,
    load_spine_vertebrae,
    load_subject,
)
from synthaug.errors import DataError, LabelError, ValidationError

CLASSES = (
    "vertebral_body",
    "vertebral_arch",
    "spinous_process",
    "transverse_processes",
    "superior_articular_processes",
    "inferior_articular_processes",
)


# --- vocabulary (no data) --------------------------------------------------------------------------


def test_every_subregion_is_declared_exactly_once() -> None:
    grouped = [m for members in sp.SPINE_CLASSES.values() for m in members] + list(sp.SPINE_BACKGROUND)
    assert sorted(grouped) == sorted(sp.TPTBOX_SUBREGIONS.values())
    for modality, ids in sp.SPINE_SUBREGION_IDS.items():
        assert set(ids) <= set(sp.TPTBOX_SUBREGIONS), modality


def test_the_shared_vocabulary_is_derived_from_both_modalities() -> None:
    vocab = sp.spine_vocabulary()
    assert vocab.names == ("background", *CLASSES)
    assert sp.spine_class_names() == CLASSES
    ct, mr = sp.spine_subregion_names("CT"), sp.spine_subregion_names("MR")
    assert ct[50] == "vertebra_corpus" and 62 not in ct and 100 not in ct
    assert mr[62] == "endplate" and mr[100] == "vertebra_disc" and 50 not in mr


def test_a_class_only_one_modality_has_is_not_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sp, "SPINE_CLASSES", {**sp.SPINE_CLASSES, "disc": ("vertebra_disc",)})
    monkeypatch.setattr(sp, "SPINE_BACKGROUND", ("spinal_cord", "spinal_canal"))
    assert "disc" not in sp.spine_class_names()  # the CT mask has no disc: not a shared class


def test_lookup_tables_per_modality() -> None:
    body, arch, spinous, transverse, superior, inferior = range(1, 7)
    ct = sp.spine_lookup_table("CT")
    assert ct[[41, 42, 43, 44, 45, 46, 47, 48, 49, 50]].tolist() == [
        arch, spinous, transverse, transverse, superior, superior, inferior, inferior, body, body
    ]  # fmt: skip
    assert ct[[0, 60, 61, 62, 100]].tolist() == [0, -1, -1, -1, -1]  # not CT ids: refused by to_spine
    mr = sp.spine_lookup_table("MR")
    assert mr[[49, 62]].tolist() == [body, body]  # the endplate joins the body (see the module docstring)
    assert mr[[60, 61, 100]].tolist() == [0, 0, 0]  # cord, canal, disc: background
    assert mr[50] == -1


def test_to_spine_numpy_and_torch_keep_type_and_dtype() -> None:
    rng = np.random.default_rng(0)
    label = rng.choice([0, *sp.SPINE_SUBREGION_IDS["MR"]], size=(5, 6, 7)).astype(np.int16)
    out = sp.to_spine(label, "MR")
    assert out.dtype == np.int16 and out.shape == label.shape
    np.testing.assert_array_equal(out, sp.spine_lookup_table("MR")[label])
    t = sp.to_spine(torch.from_numpy(label).to(torch.int32), "MR")
    assert t.dtype == torch.int32 and np.array_equal(t.numpy(), out)


def test_to_spine_refuses_ids_of_the_other_modality_or_family() -> None:
    with pytest.raises(LabelError, match=r"\[62, 100\].*CT spine subregion"):
        sp.to_spine(np.array([0, 41, 62, 100]), "CT")
    with pytest.raises(LabelError, match=r"\[5\]"):
        sp.to_spine(np.array([0, 5]), "MR")  # a TotalSegmentator liver id
    with pytest.raises(LabelError, match="integer"):
        sp.to_spine(np.array([0.0, 41.0]), "CT")
    with pytest.raises(ValidationError, match="Did you mean 'MR'"):
        sp.to_spine(np.array([0]), "MRI")


def test_vertebra_levels() -> None:
    assert sp.vertebra_levels(np.array([0, 21, 22, 23, 121, 222])) == ("L2", "L3", "L4")
    assert sp.vertebra_levels([5, 6, 7, 105, 205]) == ("C5", "C6", "C7")
    assert (
        sp.TPTBOX_VERTEBRAE[8] == "T1"
        and sp.TPTBOX_VERTEBRAE[19] == "T12"
        and sp.TPTBOX_VERTEBRAE[26] == "S1"
    )
    with pytest.raises(LabelError, match="does not number"):
        sp.vertebra_levels([27])


# --- loader checks on small synthetic files (no data) ----------------------------------------------


def _write_spine(folder: Path, *, vertebra_shift: float = 0.0, stray: bool = False) -> None:
    shape = (6, 5, 4)
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    label = np.zeros(shape, np.uint8)
    label[1:3, 1:3, 1:3] = 49
    label[4, 4, 0] = 61  # canal: outside every vertebra, allowed
    vertebrae = (label == 49).astype(np.uint8) * 22
    if stray:
        vertebrae[1, 1, 1] = 0
    moved = affine.copy()
    moved[0, 3] += vertebra_shift
    image_path, vert_path, sub_path = (folder / p for p in (sources.SPINE_MR_IMAGE, sources.SPINE_MR_VERTEBRAE,
                                                            sources.SPINE_MR_SUBREGIONS))  # fmt: skip
    image_path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.ones(shape, np.float32), affine), image_path)
    nib.save(nib.Nifti1Image(vertebrae, moved), vert_path)
    nib.save(nib.Nifti1Image(label, affine), sub_path)


def test_synthetic_spine_subject_loads(tmp_path: Path) -> None:
    _write_spine(tmp_path)
    s = _load_spine("spine_mr", tmp_path)
    assert s.modality == "MR" and s.label_source == TPTBOX_LABEL_SOURCE and s.class_names[62] == "endplate"


def test_vertebra_mask_off_the_image_grid_is_refused(tmp_path: Path) -> None:
    _write_spine(tmp_path, vertebra_shift=3.0)
    with pytest.raises(DataError, match="not on the image grid"):
        _load_spine("spine_mr", tmp_path)


def test_bone_outside_every_vertebra_is_refused(tmp_path: Path) -> None:
    _write_spine(tmp_path, stray=True)
    with pytest.raises(DataError, match="1 vertebra-subregion voxel"):
        _load_spine("spine_mr", tmp_path)


def test_totalseg_version_only_for_totalsegmentator_subjects() -> None:
    with pytest.raises(ValidationError, match="applies to the TotalSegmentator subjects"):
        load_subject("spine_ct", totalseg_version="2.10.0")


# --- real spine data -------------------------------------------------------------------------------


def _shifted_mean(image: np.ndarray, mask: np.ndarray, shift: tuple[int, int, int]) -> float:
    return float(image[np.roll(mask, shift, axis=(0, 1, 2))].mean())


SHIFTS = [
    s for axis in range(3) for d in (-2, -1, 1, 2) for s in [tuple(d if a == axis else 0 for a in range(3))]
]


@pytest.mark.data
def test_spine_subjects_grids_and_sources(subjects: dict[str, Subject]) -> None:
    ct, mr = subjects["spine_ct"], subjects["spine_mr"]
    assert ct.shape == (73, 73, 47) and mr.shape == (67, 68, 52)  # RAS+: axis 2 = inferior -> superior
    for s in (ct, mr):
        assert s.spacing == pytest.approx((1.5, 1.5, 1.5)) and nib.aff2axcodes(s.affine) == ("R", "A", "S")
        assert s.label_source == TPTBOX_LABEL_SOURCE
        assert set(np.unique(s.label).tolist()) == {0, *sp.SPINE_SUBREGION_IDS[s.modality]}
    assert (ct.modality, mr.modality) == ("CT", "MR")
    assert -1100 < ct.image.min() < -900 and ct.image.max() > 1000  # Hounsfield units


@pytest.mark.data
def test_spine_ct_labels_sit_on_bone(subjects: dict[str, Subject]) -> None:
    ct = subjects["spine_ct"]
    cortical = np.isin(ct.label, [41, 42, 43, 44, 45, 46, 47, 48, 49])  # not the corpus interior (50)
    assert float(ct.image[cortical].mean()) > 300 and float(ct.image[ct.label == 0].mean()) < 50
    aligned = _shifted_mean(ct.image, cortical, (0, 0, 0))
    assert all(
        aligned > _shifted_mean(ct.image, cortical, s) + 30 for s in SHIFTS
    )  # any 1-2 voxel shift loses bone


@pytest.mark.data
def test_spine_mr_canal_sits_on_bright_csf(subjects: dict[str, Subject]) -> None:
    mr = subjects["spine_mr"]
    canal = mr.label == 61
    assert float(mr.image[canal].mean()) > 2 * float(
        mr.image[np.isin(mr.label, [49, 62])].mean()
    )  # T2w CSF bright
    aligned = _shifted_mean(mr.image, canal, (0, 0, 0))
    assert all(aligned > _shifted_mean(mr.image, canal, s) for s in SHIFTS)


@pytest.mark.data
def test_spine_levels_and_vertebra_masks(data_cache: Path, subjects: dict[str, Subject]) -> None:
    ct_vert = load_spine_vertebrae("spine_ct", cache_dir=data_cache)
    mr_vert = load_spine_vertebrae("spine_mr", cache_dir=data_cache)
    assert sp.vertebra_levels(ct_vert) == ("L2", "L3", "L4") and sp.vertebra_levels(mr_vert) == (
        "C5",
        "C6",
        "C7",
    )
    assert ct_vert.shape == subjects["spine_ct"].shape and mr_vert.shape == subjects["spine_mr"].shape
    mr = subjects["spine_mr"]
    assert set(np.unique(mr_vert[mr.label == 62]).tolist()) <= {
        205,
        206,
        207,
    }  # endplates belong to vertebrae
    assert set(np.unique(mr_vert[mr.label == 100]).tolist()) <= {105, 106}  # discs
    assert np.array_equal(
        subjects["spine_ct"].label > 0, ct_vert > 0
    )  # CT: every subregion voxel is vertebra


@pytest.mark.data
def test_spine_class_voxel_counts(subjects: dict[str, Subject]) -> None:
    counts = {}
    for name in ("spine_ct", "spine_mr"):
        s = subjects[name]
        mapped = sp.to_spine(s.label, s.modality)
        counts[name] = np.bincount(mapped.ravel(), minlength=7)[1:]
        assert (counts[name] > 500).all(), name  # every shared class is present in both modalities
    # the vertebral body is the largest class in both; left/right pairs merged
    assert counts["spine_ct"].argmax() == counts["spine_mr"].argmax() == 0


@pytest.mark.data
def test_mr_vertebral_bodies_measure_like_the_lumbar_ct_ones(subjects: dict[str, Subject]) -> None:
    """What the docs say about the MR's C5-C7 numbering: its bodies are as wide as the CT's lumbar ones."""
    widths = {}
    for name, body_ids in (("spine_ct", [49, 50]), ("spine_mr", [49])):
        s = subjects[name]
        body = np.isin(s.label, body_ids)
        widest = max(np.ptp(np.nonzero(body[:, :, z])[0]) + 1 for z in range(body.shape[2]) if body[:, :, z].any())
        widths[name] = widest * s.spacing[0]
    assert widths["spine_ct"] > 40 and widths["spine_mr"] > 40  # mm; cervical bodies are ~15-20 mm wide
    assert abs(widths["spine_ct"] - widths["spine_mr"]) < 10
