"""Label-noise ceiling (synthaug.data.label_noise): Dice arithmetic, mapping by class name, the scenario's slabs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from synthaug.data import label_noise as ln
from synthaug.data import nnunet_export as ne
from synthaug.data import scenarios as sc
from synthaug.data import subjects as subjects_module
from synthaug.data.subjects import Subject, totalseg_label_source
from synthaug.data.vocabulary import superclass_vocabulary, totalsegmentator_vocabulary
from synthaug.errors import DataError, LabelError, ValidationError

from .test_scenarios import SUBJECTS as FAKE

# --- Dice and renumbering ---------------------------------------------------------------------------


def test_dice_per_class_by_hand() -> None:
    ref = np.array([0, 1, 1, 2, 2, 2])
    other = np.array([0, 1, 2, 2, 2, 0])
    dice, ref_sum, other_sum = ln.dice_per_class(ref, other, 4)
    # class 0: tp 1, |ref| 1, |other| 2 -> 2/3; class 1: tp 1, 2 + 1 -> 2/3; class 2: tp 2, 3 + 3 -> 2/3; 3: none
    np.testing.assert_allclose(dice[:3], [2 / 3, 2 / 3, 2 / 3])
    assert np.isnan(dice[3]) and ref_sum.tolist() == [1, 2, 3, 0] and other_sum.tolist() == [2, 1, 3, 0]
    dice, _, _ = ln.dice_per_class(np.array([[1, 1], [0, 0]]), np.array([[0, 0], [0, 0]]), 2)
    assert dice[1] == 0.0  # in one version only: 0, as nnU-Net scores it
    with pytest.raises(ValidationError, match="differ"):
        ln.dice_per_class(np.zeros(3, int), np.zeros(4, int), 2)
    with pytest.raises(LabelError, match="outside 0..1"):
        ln.dice_per_class(np.array([0, 2]), np.array([0, 1]), 2)
    with pytest.raises(LabelError, match="integer"):
        ln.dice_per_class(np.array([0.0]), np.array([0]), 2)


def test_relabel_by_name() -> None:
    label = np.array([[0, 1], [2, 2]], dtype=np.int16)
    out = ln.relabel_by_name(label, {1: "liver", 2: "spleen"}, {1: "spleen", 2: "liver", 3: "kidney"})
    assert out.dtype == np.int16 and out.tolist() == [[0, 2], [1, 1]]
    with pytest.raises(LabelError, match=r"\['spleen'\].*cannot be compared by name"):
        ln.relabel_by_name(label, {1: "liver", 2: "spleen"}, {1: "liver"})
    with pytest.raises(LabelError, match=r"id\(s\) \[2\]"):
        ln.relabel_by_name(label, {1: "liver"}, {1: "liver"})


# --- the ceiling on fake subjects: two "releases" with different numberings --------------------------

MR_NAMES = totalsegmentator_vocabulary("total_mr").as_dict()
LIVER, SPLEEN = (next(k for k, v in MR_NAMES.items() if v == n) for n in ("liver", "spleen"))
SWAPPED = {
    **MR_NAMES,
    LIVER: "spleen",
    SPLEEN: "liver",
}  # the older release numbers liver and spleen the other way
CHANGED = 7  # liver voxels the older release calls background, all in the upper half of MR C


def _mr_label() -> np.ndarray:
    label = np.zeros((12, 10, 19), np.int16)
    label[2:8, 2:8, :] = LIVER  # 36 voxels per slice
    label[9:11, 1:4, :] = SPLEEN
    return label


def fake_loader(name: str, *, cache_dir: Any = None, totalseg_version: str | None = None) -> Subject:
    """2.18.0: the scenario test subjects; 2.10.0: the same images, renumbered MR labels, a few liver voxels lost."""
    if name != "mr_c":
        return FAKE[name]
    base, label = FAKE["mr_c"], _mr_label()
    version = totalseg_version or "2.18.0"
    names = MR_NAMES
    if version == "2.10.0":
        lost = np.argwhere(label == LIVER)
        lost = lost[lost[:, 2] >= 9][:CHANGED]
        label[tuple(lost.T)] = 0
        label = np.where(label == LIVER, SPLEEN, np.where(label == SPLEEN, LIVER, label)).astype(np.int16)
        names = SWAPPED
    return Subject("mr_c", base.image, label, base.affine, "MR", names, totalseg_label_source(version))


@pytest.fixture
def fake_releases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subjects_module, "load_subject", fake_loader)


def test_ceiling_maps_by_name_and_respects_the_test_slabs(fake_releases: None) -> None:
    scenario = sc.get_scenario("cross-modality", loader=fake_loader)
    ceiling = ln.label_noise_ceiling(scenario)
    assert ceiling.available and ceiling.reason == "" and ceiling.classes == superclass_vocabulary().names[1:]
    assert "2.18.0" in ceiling.reference and "2.10.0" in ceiling.other
    lower, every = ceiling.group("mr_c_lower"), ceiling.group("mr_c_all")
    assert (
        lower is not None and every is not None and ceiling.group("mr_c_upper") is None
    )  # generator: not scored
    assert (lower.role, every.role) == ("test", "report")
    # the lower half (slices 0-8) is untouched: 1 for every scored class; without mapping by name, 0
    assert lower.identical and lower.mean == 1.0 and lower.per_class["liver"] == 1.0
    assert lower.per_class["spleen"] == 1.0 and lower.per_class["muscle"] is None  # in neither version
    liver_voxels = 36 * 19
    expected = 2 * (liver_voxels - CHANGED) / (2 * liver_voxels - CHANGED)
    assert every.per_class["liver"] == pytest.approx(expected) and every.per_class["spleen"] == 1.0
    assert every.mean == pytest.approx((expected + 1.0) / 2) and not every.identical
    (case,) = every.cases
    assert case.case == "mrC_z000-018" and case.voxels["liver"] == (liver_voxels, liver_voxels - CHANGED)
    assert ln.LabelNoiseCeiling.from_dict(json.loads(json.dumps(ceiling.to_dict()))) == ceiling


def test_ceiling_for_an_exported_dataset_uses_its_cases(fake_releases: None, tmp_path: Path) -> None:
    scenario = sc.get_scenario("cross-modality", slab_slices=10, loader=fake_loader)
    folder = ne.export_nnunet(scenario, tmp_path, dataset_id=21, loader=fake_loader)
    meta = json.loads((folder / "dataset.json").read_text())
    assert ln.ceiling_for_dataset(meta) == ln.label_noise_ceiling(scenario)
    assert ln.ceiling_for_dataset({"labels": {"background": 0}}) is None  # not a synthaug scenario dataset
    with pytest.raises(DataError, match="malformed"):
        ln.ceiling_for_dataset({"synthaug": {"scenario": "x", "cases": [{"subject": "ct_a"}]}})


def test_images_that_differ_between_releases_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def shifted(name: str, *, cache_dir: Any = None, totalseg_version: str | None = None) -> Subject:
        s = fake_loader(name, totalseg_version=totalseg_version)
        if totalseg_version == "2.10.0":
            return Subject(s.name, s.image + 1, s.label, s.affine, s.modality, s.class_names, s.label_source)
        return s

    monkeypatch.setattr(subjects_module, "load_subject", shifted)
    with pytest.raises(DataError, match="images differ"):
        ln.label_noise_ceiling(sc.get_scenario("cross-modality", loader=fake_loader))


def test_spine_ceiling_is_not_available() -> None:
    ceiling = ln.label_noise_ceiling(sc.get_scenario("spine-cross-modality", loader=FAKE.__getitem__))
    assert not ceiling.available and ceiling.groups == () and ceiling.group("spine_mr") is None
    assert (
        ceiling.reason.startswith("not available")
        and "spine_mr" in ceiling.reason
        and "not 1" in ceiling.reason
    )
    with pytest.raises(ValidationError, match="needs a reason"):
        ln.LabelNoiseCeiling("x", "spine", False, "", "", "", ())


def test_markdown_carries_provenance_and_says_what_is_missing(fake_releases: None) -> None:
    ceilings = [
        ln.label_noise_ceiling(sc.get_scenario("cross-modality", loader=fake_loader)),
        ln.label_noise_ceiling(sc.get_scenario("spine-cross-modality", loader=FAKE.__getitem__)),
    ]
    text = ln.ceiling_markdown(ceilings, command="synthaug data label-ceiling ...", date="2026-01-02",
                               machine="test machine", commit="abc123")  # fmt: skip
    for piece in ("synthaug data label-ceiling ...", "2026-01-02", "test machine", "`abc123`",
                  "| mr_c_lower | test | 1 | 1.000 |", "mr_c_lower: both releases label these slabs identically",
                  "## spine-cross-modality (spine labels)", "**not available"):  # fmt: skip
        assert piece in text, piece


# --- real data -----------------------------------------------------------------------------------


@pytest.mark.data
@pytest.mark.slow
def test_real_ceilings(data_cache: Path) -> None:
    by_name = {name: ln.label_noise_ceiling(name, cache_dir=data_cache) for name in sc.list_scenarios()}
    for name in ("cross-modality", "cross-scanner"):
        c = by_name[name]
        assert c.available and all(0.9 < (g.mean or 0) < 1.0 and not g.identical for g in c.groups), name
    assert {g.group for g in by_name["cross-modality"].groups} == {"mr_c_lower", "mr_c_all"}
    (held,) = by_name["in-domain"].groups
    assert held.identical and held.mean == 1.0  # CT A: both releases ship the same label file
    assert not by_name["spine-cross-modality"].available


@pytest.mark.data
def test_real_whole_volume_agreement_and_class_maps(data_cache: Path) -> None:
    from synthaug.data import sources

    maps = {v: subjects_module.read_class_maps(data_cache / s.folder / sources.CLASS_MAP_FILE)
            for v, s in (("2.18", sources.TOTALSEGMENTATOR), ("2.10", sources.TOTALSEGMENTATOR_2_10))}  # fmt: skip
    for task in ("total", "total_mr"):
        assert set(maps["2.10"][task].values()) == set(maps["2.18"][task].values())
    mr = ln.release_agreement("mr_c", cache_dir=data_cache)
    assert 0.9 < (mr.mean or 0) < 0.99 and not mr.identical
    assert ln.release_agreement("ct_a", cache_dir=data_cache).identical
    with pytest.raises(ValidationError, match="subject"):
        ln.release_agreement("spine_mr", cache_dir=data_cache)
