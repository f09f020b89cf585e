"""Sample subject loaders: alignment, orientation, intensities, labels (real data, marker ``data``)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from synthaug.data import sources
from synthaug.data.subjects import (
    MNI_LABEL_SOURCE,
    SUBJECT_NAMES,
    TOTALSEG_LABEL_SOURCE,
    TPTBOX_LABEL_SOURCE,
    Subject,
    TissueMaps,
    _load_nifti_pair,
    _resample_nearest,
    load_subject,
    read_class_maps,
    read_dicom_series,
    slab_indices,
)
from synthaug.data.vocabulary import TOTALSEG_CLASSES, shared_vocabulary, to_shared
from synthaug.errors import DataError, ShapeError, ValidationError


def _ids(subject: Subject, name: str) -> int:
    return next(k for k, v in subject.class_names.items() if v == name)


def _centroid(subject: Subject, name: str) -> np.ndarray:
    mask = subject.label == _ids(subject, name)
    assert mask.any(), f"{subject.name} has no {name}"
    return np.argwhere(mask).mean(axis=0)


def _tiny(shape: tuple[int, int, int] = (4, 5, 6)) -> Subject:
    return Subject(
        name="tiny",
        image=np.zeros(shape, np.float32),
        label=np.zeros(shape, np.int16),
        affine=np.eye(4),
        modality="CT",
        class_names={1: "liver"},
        label_source="test",
    )


# --- no data needed --------------------------------------------------------------------------------


def test_unknown_subject_name_suggests_the_closest() -> None:
    with pytest.raises(ValidationError, match="Did you mean 'ct_a'"):
        load_subject("ct-a")
    with pytest.raises(ValidationError, match="Did you mean 'mni'"):
        load_subject("mni152")


def test_subject_checks_its_arrays() -> None:
    assert _tiny().spacing == (1.0, 1.0, 1.0) and "tiny" in repr(_tiny())
    with pytest.raises(ShapeError, match="label shape"):
        Subject("x", np.zeros((4, 5, 6), np.float32), np.zeros((4, 5, 5), np.int16), np.eye(4), "CT", {}, "t")
    with pytest.raises(ShapeError, match="float32"):
        Subject("x", np.zeros((4, 5, 6)), np.zeros((4, 5, 6), np.int16), np.eye(4), "CT", {}, "t")
    with pytest.raises(ValidationError, match="int16"):
        Subject("x", np.zeros((4, 5, 6), np.float32), np.zeros((4, 5, 6), np.uint8), np.eye(4), "CT", {}, "t")
    with pytest.raises(ValidationError, match="Did you mean 'MR'"):
        Subject(
            "x", np.zeros((4, 5, 6), np.float32), np.zeros((4, 5, 6), np.int16), np.eye(4), "MRI", {}, "t"
        )


@pytest.mark.parametrize("n", [20, 21, 1])
def test_slab_indices_split_once(n: int) -> None:
    subject = _tiny((3, 2, n))
    upper, lower, whole = (slab_indices(subject, p) for p in ("upper", "lower", "all"))
    assert upper == slice(n // 2, n) and lower == slice(0, n // 2) and whole == slice(0, n)
    idx = np.arange(n)
    assert sorted([*idx[upper], *idx[lower]]) == idx.tolist()
    assert slab_indices(subject, "upper", axis=0) == slice(1, 3)


def test_slab_indices_validate() -> None:
    with pytest.raises(ValidationError, match="Did you mean 'upper'"):
        slab_indices(_tiny(), "uper")
    with pytest.raises(ValidationError, match="axis"):
        slab_indices(_tiny(), "all", axis=3)


def test_resample_nearest_onto_a_flipped_grid() -> None:
    gen = np.random.default_rng(0)
    label = gen.integers(0, 5, (6, 7, 4)).astype(np.int16)
    ras = np.diag([2.0, 2.0, 3.0, 1.0])
    las = ras.copy()  # same voxels stored with the x axis reversed
    las[0, 0], las[0, 3] = -2.0, 10.0
    out = _resample_nearest(label[::-1], las, label.shape, ras)
    assert np.array_equal(out, label)
    shifted = ras.copy()
    shifted[:3, 3] += 1000.0  # no overlap: all background
    assert not _resample_nearest(label, shifted, label.shape, ras).any()


def test_misaligned_image_and_label_raise_data_error(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), tmp_path / "img.nii.gz")
    moved = np.eye(4)
    moved[0, 3] = 2.0
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), moved), tmp_path / "lab.nii.gz")
    with pytest.raises(DataError, match="not on one grid"):
        _load_nifti_pair("x", tmp_path, "img.nii.gz", "lab.nii.gz")
    nib.save(nib.Nifti1Image(np.full((4, 4, 4), 0.5, np.float32), np.eye(4)), tmp_path / "lab.nii.gz")
    with pytest.raises(DataError, match="non-integer"):
        _load_nifti_pair("x", tmp_path, "img.nii.gz", "lab.nii.gz")


def test_class_map_is_parsed_not_executed(tmp_path: Path) -> None:
    path = tmp_path / "map_to_binary.py"
    path.write_text("import sys\nsys.exit('executed!')\nclass_map = {'total': {1: 'liver'}, 'x': {2: 'b'}}\n")
    assert read_class_maps(path) == {"total": {1: "liver"}, "x": {2: "b"}}
    path.write_text("other = {}\n")
    with pytest.raises(DataError, match="class_map"):
        read_class_maps(path)


# --- real data -------------------------------------------------------------------------------------


@pytest.mark.data
@pytest.mark.parametrize("name", SUBJECT_NAMES)
def test_subjects_are_aligned_and_canonical(subjects: dict[str, Subject], name: str) -> None:
    s = subjects[name]
    assert s.name == name
    assert s.image.dtype == np.float32 and s.label.dtype == np.int16 and s.affine.dtype == np.float64
    assert s.image.ndim == 3 and s.label.shape == s.image.shape and s.affine.shape == (4, 4)
    assert nib.aff2axcodes(s.affine) == ("R", "A", "S")
    assert np.isfinite(s.image).all()
    assert s.image.flags["C_CONTIGUOUS"] and s.label.flags["C_CONTIGUOUS"]
    assert torch.from_numpy(s.label).shape == s.image.shape  # no negative strides
    assert set(np.unique(s.label).tolist()) - {0} <= set(s.class_names)
    assert 0 not in s.class_names
    expected = {"mni": MNI_LABEL_SOURCE, "spine_ct": TPTBOX_LABEL_SOURCE, "spine_mr": TPTBOX_LABEL_SOURCE}
    assert s.label_source == expected.get(name, TOTALSEG_LABEL_SOURCE)
    if name != "mni":
        assert "manual ground truth" in s.label_source


@pytest.mark.data
def test_expected_grids(subjects: dict[str, Subject]) -> None:
    assert subjects["ct_a"].shape == (122, 101, 112) and subjects["ct_a"].spacing == pytest.approx((3, 3, 3))
    assert subjects["ct_b"].shape == (512, 512, 20)
    assert subjects["ct_b"].spacing == pytest.approx((0.9765625, 0.9765625, 2.0))
    assert subjects["mr_c"].shape == (117, 91, 20) and subjects["mni"].shape == (197, 233, 189)
    assert subjects["ct_a"].modality == subjects["ct_b"].modality == "CT"
    assert subjects["mr_c"].modality == subjects["mni"].modality == "MR"


@pytest.mark.data
@pytest.mark.parametrize(("name", "low", "high"), [("ct_a", 30, 60), ("ct_b", 70, 110)])
def test_liver_hounsfield_units_are_plausible(
    subjects: dict[str, Subject], name: str, low: float, high: float
) -> None:
    s = subjects[name]
    liver_hu = float(s.image[s.label == _ids(s, "liver")].mean())
    assert 20 <= liver_hu <= 150
    assert low <= liver_hu <= high  # ct_a ~44 HU native, ct_b ~89 HU contrast-enhanced
    bone = np.isin(s.label, [k for k, v in s.class_names.items() if v.startswith("vertebrae")])
    assert float(s.image[bone].mean()) > 150  # labels sit on the bones: no flipped or transposed axis
    assert float((s.image[s.label > 0] > -500).mean()) > 0.9


@pytest.mark.data
@pytest.mark.parametrize(
    ("name", "lower", "upper"),
    [
        ("ct_a", "urinary_bladder", "liver"),
        ("ct_b", "vertebrae_T12", "vertebrae_T11"),
        ("mr_c", "iliopsoas_left", "liver"),
    ],
)
def test_anatomical_directions_match_ras(
    subjects: dict[str, Subject], name: str, lower: str, upper: str
) -> None:
    s = subjects[name]
    assert _centroid(s, "liver")[0] > _centroid(s, "spleen")[0]  # +x = patient right
    assert (
        _centroid(s, "liver")[1] > _centroid(s, "autochthon_left")[1]
    )  # +y = anterior (back muscles behind)
    assert _centroid(s, upper)[2] > _centroid(s, lower)[2]  # axis 2: inferior -> superior


@pytest.mark.data
def test_class_names_come_from_the_right_map(subjects: dict[str, Subject]) -> None:
    ct_names = dict(enumerate(TOTALSEG_CLASSES["total"], start=1))
    mr_names = dict(enumerate(TOTALSEG_CLASSES["total_mr"], start=1))
    assert subjects["ct_a"].class_names == subjects["ct_b"].class_names == ct_names
    assert subjects["mr_c"].class_names == mr_names
    assert set(np.unique(subjects["mr_c"].label).tolist()) - {0} <= set(mr_names)
    assert subjects["mni"].class_names == {1: "csf", 2: "gray_matter", 3: "white_matter"}


@pytest.mark.data
def test_ct_and_mr_liver_share_one_id_after_to_shared(subjects: dict[str, Subject]) -> None:
    liver = shared_vocabulary().index("liver")
    for name, source in (("ct_a", "total"), ("ct_b", "total"), ("mr_c", "total_mr")):
        s = subjects[name]
        shared = to_shared(s.label, source)
        assert shared.dtype == np.int16
        assert np.array_equal(shared == liver, s.label == _ids(s, "liver"))


@pytest.mark.data
def test_mni_tissue_labels(subjects: dict[str, Subject]) -> None:
    s = subjects["mni"]
    counts = np.bincount(s.label.ravel(), minlength=4)
    assert counts.shape == (4,) and (counts > 1000).all()
    t1 = [float(s.image[s.label == i].mean()) for i in (1, 2, 3)]
    assert t1[2] > t1[1] > t1[0]  # T1: WM > GM > CSF
    ventricle = np.linalg.inv(s.affine) @ np.array([15.0, -20.0, 22.0, 1.0])  # right lateral ventricle
    assert s.label[tuple(np.round(ventricle[:3]).astype(int))] == 1


@pytest.mark.data
def test_mni_tissue_maps(tissue_maps: TissueMaps, subjects: dict[str, Subject]) -> None:
    m = tissue_maps
    for attr in ("gm", "wm", "csf", "brain_mask"):
        arr = getattr(m, attr)
        assert arr.dtype == np.float32 and arr.shape == m.t1.shape and arr.flags["C_CONTIGUOUS"]
        assert 0.0 <= float(arr.min()) and float(arr.max()) <= 1.0 and float(arr.max()) > 0.9
    assert set(np.unique(m.brain_mask).tolist()) == {0.0, 1.0}
    assert not m.csf[m.brain_mask == 0].any()
    assert np.allclose(m.csf, np.clip(m.brain_mask - m.gm - m.wm, 0, 1))
    assert np.array_equal(m.affine, subjects["mni"].affine) and np.array_equal(m.t1, subjects["mni"].image)
    assert m.spacing == (1.0, 1.0, 1.0)


@pytest.mark.data
def test_dicom_reader_sorts_by_position_not_file_name(data_cache: Path, tmp_path: Path) -> None:
    folder = data_cache / sources.TOTALSEGMENTATOR.folder / sources.CT_DICOM_DIR
    files = sorted(folder.iterdir())
    shuffled = files[:]
    random.Random(0).shuffle(shuffled)
    for i, path in enumerate(shuffled):
        shutil.copy(path, tmp_path / f"slice_{i:02d}.dcm")
    reference, reordered = read_dicom_series(folder), read_dicom_series(tmp_path)
    assert np.array_equal(reference.get_fdata(), reordered.get_fdata())
    assert np.allclose(reference.affine, reordered.affine)
    assert reference.get_fdata().min() == pytest.approx(-1024.0)  # HU after RescaleIntercept


@pytest.mark.data
def test_dicom_folder_with_a_foreign_slice_is_rejected(data_cache: Path, tmp_path: Path) -> None:
    folder = data_cache / sources.TOTALSEGMENTATOR.folder / sources.CT_DICOM_DIR
    for path in sorted(folder.iterdir())[:3]:
        shutil.copy(path, tmp_path / path.name)
    shutil.copy(sorted(folder.iterdir())[0], tmp_path / "duplicate.dcm")
    with pytest.raises(DataError, match="duplicated or unevenly spaced"):
        read_dicom_series(tmp_path)


@pytest.mark.data
def test_class_maps_file_parses(data_cache: Path) -> None:
    maps = read_class_maps(data_cache / sources.TOTALSEGMENTATOR.folder / sources.CLASS_MAP_FILE)
    assert maps["total"][5] == "liver" and maps["total_mr"][5] == "liver" and len(maps["total"]) == 117
