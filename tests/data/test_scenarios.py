"""Tests of synthaug.data.scenarios on small synthetic subjects (plus one real-data check)."""

from __future__ import annotations

import numpy as np
import pytest

from synthaug.data import scenarios as sc
from synthaug.data.spine import spine_subregion_names, spine_vocabulary, to_spine
from synthaug.data.subjects import TPTBOX_LABEL_SOURCE, Subject, slab_indices
from synthaug.data.vocabulary import shared_vocabulary, superclass_vocabulary, totalsegmentator_vocabulary
from synthaug.errors import LabelError, LeakageError, ValidationError


def fake_subject(name: str, shape: tuple[int, int, int], modality: str, seed: int) -> Subject:
    """A random volume whose labels use TotalSegmentator ids (liver, spleen, a vertebra / sacrum)."""
    rng = np.random.default_rng(seed)
    source = "total" if modality == "CT" else "total_mr"
    vocab = totalsegmentator_vocabulary(source)
    organs = [vocab.index("liver"), vocab.index("spleen"), vocab.index("sacrum")]
    label = rng.choice([0, *organs], size=shape).astype(np.int16)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = (-100.0, -80.0, -300.0 + seed)
    return Subject(
        name=name,
        image=rng.normal(size=shape).astype(np.float32),
        label=label,
        affine=affine,
        modality=modality,
        class_names=vocab.as_dict(),
        label_source="TotalSegmentator 2.18.0 model prediction (not manual ground truth)",
    )


def fake_spine(name: str, shape: tuple[int, int, int], modality: str, seed: int) -> Subject:
    """A random volume whose labels use the TPTBox subregion ids of ``modality``."""
    rng = np.random.default_rng(seed)
    names = spine_subregion_names(modality)
    return Subject(
        name=name,
        image=rng.normal(size=shape).astype(np.float32),
        label=rng.choice([0, *names], size=shape).astype(np.int16),
        affine=np.diag([1.5, 1.5, 1.5, 1.0]),
        modality=modality,
        class_names=names,
        label_source=TPTBOX_LABEL_SOURCE,
    )


SUBJECTS = {
    "ct_a": fake_subject("ct_a", (12, 10, 40), "CT", 0),
    "ct_b": fake_subject("ct_b", (14, 14, 8), "CT", 1),
    "mr_c": fake_subject("mr_c", (12, 10, 19), "MR", 2),
    "spine_ct": fake_spine("spine_ct", (9, 9, 47), "CT", 3),
    "spine_mr": fake_spine("spine_mr", (8, 9, 52), "MR", 4),
}


def loader(name: str) -> Subject:
    return SUBJECTS[name]


def z_set(cases: tuple[sc.Case, ...], subject: str) -> set[int]:
    return {z for c in cases if c.subject == subject for z in range(c.z_start, c.z_stop)}


def test_list_and_unknown_scenario() -> None:
    assert sc.list_scenarios() == ("cross-modality", "cross-scanner", "in-domain", "spine-cross-modality")
    with pytest.raises(ValidationError, match="Did you mean 'cross-modality'"):
        sc.get_scenario("cross_modality", loader=loader)
    with pytest.raises(ValidationError, match="slab_slices must be an int >= 1"):
        sc.get_scenario("in-domain", slab_slices=0, loader=loader)
    with pytest.raises(ValidationError, match="label_space"):
        sc.get_scenario("in-domain", label_space="organs", loader=loader)  # type: ignore[arg-type]


def test_cross_modality_split() -> None:
    s = sc.get_scenario("cross-modality", slab_slices=10, loader=loader)
    train, test = s.cases_with("train"), s.cases_with("test")
    assert z_set(train, "ct_a") == set(range(40)) and len(train) == 4
    assert [c.n_slices for c in train] == [10, 10, 10, 10]
    lower, upper = slab_indices(SUBJECTS["mr_c"], "lower"), slab_indices(SUBJECTS["mr_c"], "upper")
    assert [(c.subject, c.z_slice) for c in test] == [("mr_c", lower)]
    assert s.groups == {"mr_c_lower": ("mrC_z000-008",), "mr_c_all": ("mrC_z000-018",)}
    assert s.generator_case_ids() == ("mrC_z009-018",)
    assert s.cases_with(group="mr_c_upper")[0].z_slice == upper
    # the upper half (generator data) is never a held-out test case
    assert not z_set(test, "mr_c") & set(range(upper.start, upper.stop))
    sc.check_no_overlap(s.generator_case_ids(), s.test_case_ids())
    with pytest.raises(LeakageError):  # why mr_c_all is a separate report group, not a test group
        sc.check_no_overlap(s.generator_case_ids(), s.report_case_ids())
    assert s.normalization == "zscore" and s.label_space == "superclass"
    assert {c.normalization for c in s.cases} == {"zscore"}
    assert "TotalSegmentator" in s.note and "not manual ground truth" in s.note


def test_cross_scanner_split() -> None:
    s = sc.get_scenario("cross-scanner", loader=loader)
    assert s.test_case_ids() == ("ctB_z000-007",)
    assert z_set(s.cases_with("train"), "ct_a") == set(range(40))
    assert s.normalization == "CT" and not s.generator_case_ids()


def test_in_domain_split_has_gap() -> None:
    s = sc.get_scenario("in-domain", slab_slices=8, gap_slices=3, loader=loader)
    (held,) = s.cases_with("test")
    assert (held.subject, held.z_start, held.z_stop) == ("ct_a", 32, 40)
    train_z = z_set(s.cases_with("train"), "ct_a")
    assert max(train_z) == 32 - 3 - 1 and min(train_z) == 0 and len(train_z) == 29
    assert s.normalization == "CT"
    sc.check_no_overlap(s.train_case_ids(), s.test_case_ids())
    with pytest.raises(ValidationError, match="too few"):
        sc.get_scenario("in-domain", slab_slices=30, gap_slices=10, loader=loader)


def test_spine_cross_modality_split() -> None:
    s = sc.get_scenario("spine-cross-modality", loader=loader)
    assert s.label_space == "spine" and s.normalization == "zscore"  # CT train, MR test: z-score channel
    assert s.train_case_ids() == ("spineCt_z000-015", "spineCt_z016-030", "spineCt_z031-046")
    assert s.test_case_ids() == ("spineMr_z000-051",) and s.groups == {"spine_mr": ("spineMr_z000-051",)}
    assert not s.generator_case_ids() and not s.report_case_ids()
    assert "TPTBox" in s.note and "manual ground truth" in s.note and "TotalSegmentator" not in s.note
    assert "never redistributed" in s.reference and "L2-L4" in s.description and "C5-C7" in s.description
    assert sc.scenario_vocabulary(s) == spine_vocabulary()
    built = {c.id: (image, label) for c, image, label, _ in sc.build_cases(s, loader=loader)}
    image, label = built["spineMr_z000-051"]
    np.testing.assert_array_equal(label, to_spine(SUBJECTS["spine_mr"].label, "MR"))
    assert label.max() < spine_vocabulary().n_labels
    _, label = built["spineCt_z016-030"]
    np.testing.assert_array_equal(label, to_spine(SUBJECTS["spine_ct"].label[:, :, 16:31], "CT"))


def test_label_spaces_must_fit_the_scenario() -> None:
    with pytest.raises(ValidationError, match="cannot use label_space='superclass'"):
        sc.get_scenario("spine-cross-modality", label_space="superclass", loader=loader)
    with pytest.raises(ValidationError, match="cannot use label_space='spine'"):
        sc.get_scenario("cross-modality", label_space="spine", loader=loader)
    assert sc.get_scenario("cross-modality", loader=loader).label_space == "superclass"
    with pytest.raises(LabelError, match="TPTBox spine subregion labels"):
        sc.map_labels(SUBJECTS["spine_ct"].label, SUBJECTS["spine_ct"], "superclass")
    with pytest.raises(LabelError, match="TotalSegmentator labels"):
        sc.map_labels(SUBJECTS["ct_a"].label, SUBJECTS["ct_a"], "spine")


def test_a_scenario_without_test_volumes_is_refused() -> None:
    only_train = (sc.Case("ct_a", 0, 10, "train", "t"), sc.Case("mr_c", 0, 5, "report", "r"))
    with pytest.raises(ValidationError, match="no test case"):
        sc.Scenario("no-test", "", only_train)


def test_groups_sharing_no_class_with_training_are_refused() -> None:
    s = sc.get_scenario("spine-cross-modality", loader=loader)
    names = spine_vocabulary().names
    sc.check_shared_classes(s, {"spineCt_z000-015": [0, 1, 2], "spineMr_z000-051": [0, 2, 3]}, names)
    with pytest.raises(LabelError, match=r"\['vertebral_body', 'vertebral_arch'\].*'spine_mr' holds \['spinous_process'\]"):
        sc.check_shared_classes(s, {"spineCt_z000-015": [0, 1, 2], "spineMr_z000-051": [0, 3]}, names)
    with pytest.raises(LabelError, match="share no foreground class"):
        sc.check_shared_classes(s, {"spineCt_z000-015": [0, 1], "spineMr_z000-051": [0]}, names)


def test_case_ids_are_stable_and_validated() -> None:
    case = sc.Case("ct_a", 0, 16, "train", "ct_a_train")
    assert case.id == "ctA_z000-015" and case.n_slices == 16
    assert case.to_dict()["id"] == "ctA_z000-015" and case.to_dict()["normalization"] == "CT"
    assert (
        sc.get_scenario("in-domain", loader=loader).train_case_ids()
        == sc.get_scenario("in-domain", loader=loader).train_case_ids()
    )
    with pytest.raises(ValidationError, match="Did you mean 'test'"):
        sc.Case("ct_a", 0, 4, "tset", "g")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="z_start < z_stop"):
        sc.Case("ct_a", 5, 5, "train", "g")


def test_check_no_overlap() -> None:
    sc.check_no_overlap(["ctA_z000-015"], ["ctA_z016-031", "mrC_z000-015"])
    with pytest.raises(LeakageError, match="ctA_z015-020 ~ ctA_z000-015"):
        sc.check_no_overlap(["ctA_z000-015"], ["ctA_z015-020"])
    with pytest.raises(LeakageError, match="Remove the overlapping"):
        sc.check_no_overlap([sc.Case("mr_c", 0, 19, "report", "all")], [sc.Case("mr_c", 18, 19, "test", "x")])
    with pytest.raises(LeakageError):  # ids without a slice range clash only when equal
        sc.check_no_overlap(["volume_7"], ["volume_7"])
    sc.check_no_overlap(["volume_7"], ["volume_8", "ctA_z000-003"])


def test_scenario_rejects_leaky_cases() -> None:
    cases = (sc.Case("ct_a", 0, 10, "train", "t"), sc.Case("ct_a", 9, 20, "test", "x"))
    with pytest.raises(LeakageError):
        sc.Scenario("leaky", "overlapping train and test", cases)
    gen = (
        sc.Case("ct_a", 0, 5, "train", "t"),
        sc.Case("mr_c", 0, 10, "generator", "g"),
        sc.Case("mr_c", 5, 10, "test", "x"),
    )
    with pytest.raises(LeakageError, match="generator-training"):
        sc.Scenario("leaky", "generator data tested", gen)
    with pytest.raises(ValidationError, match="repeats case id"):
        sc.Scenario("dup", "", (cases[0], cases[0]))
    mixed = (sc.Case("ct_a", 0, 5, "train", "t"), sc.Case("mr_c", 0, 5, "test", "x", normalization="zscore"))
    with pytest.raises(ValidationError, match="mixes case normalizations"):
        sc.Scenario("mixed", "", mixed)
    with pytest.raises(ValidationError, match="no cases"):
        sc.Scenario("empty", "", ())


def test_build_cases_slices_maps_and_shifts_affine() -> None:
    s = sc.get_scenario("cross-modality", slab_slices=10, loader=loader)
    built = list(sc.build_cases(s, loader=loader))
    assert [c.id for c, *_ in built] == [c.id for c in s.cases if c.role != "generator"]
    n_super = superclass_vocabulary().n_labels
    for case, image, label, affine in built:
        subject = SUBJECTS[case.subject]
        assert image.dtype == np.float32 and label.dtype == np.int16 and image.shape == label.shape
        np.testing.assert_array_equal(image, subject.image[:, :, case.z_slice])
        assert label.min() >= 0 and label.max() < n_super
        # voxel (i, j, 0) of the slab is voxel (i, j, z_start) of the subject
        np.testing.assert_allclose(affine @ [1, 2, 0, 1], subject.affine @ [1, 2, case.z_start, 1])
    case, _, label, _ = built[0]
    liver_ct = totalsegmentator_vocabulary("total").index("liver")
    liver_super = superclass_vocabulary().index("liver")
    np.testing.assert_array_equal(
        label == liver_super, SUBJECTS["ct_a"].label[:, :, case.z_slice] == liver_ct
    )
    gen = list(sc.build_cases(s, roles=("generator",), loader=loader))
    assert [c.role for c, *_ in gen] == ["generator"]
    with pytest.raises(ValidationError, match="roles"):
        list(sc.build_cases(s, roles=("training",), loader=loader))


def test_build_cases_shared_label_space() -> None:
    s = sc.get_scenario("cross-scanner", label_space="shared", loader=loader)
    ((case, _, label, _),) = sc.build_cases(s, roles=("test",), loader=loader)
    vocab = shared_vocabulary()
    assert set(np.unique(label).tolist()) <= {
        0,
        vocab.index("liver"),
        vocab.index("spleen"),
        vocab.index("sacrum"),
    }
    assert vocab.index("sacrum") in label


def test_scenario_to_dict() -> None:
    d = sc.get_scenario("in-domain", loader=loader).to_dict()
    assert d["name"] == "in-domain" and d["groups"] == {"ct_a_heldout": ["ctA_z024-039"]}
    assert {c["role"] for c in d["cases"]} == {"train", "test"}


@pytest.mark.data
def test_real_scenarios(subjects: dict[str, Subject]) -> None:
    real = subjects.__getitem__
    cross = sc.get_scenario("cross-modality", loader=real)
    lower = slab_indices(subjects["mr_c"], "lower")
    assert cross.test_case_ids() == (f"mrC_z{lower.start:03d}-{lower.stop - 1:03d}",)
    assert len(cross.train_case_ids()) == 7  # 112 slices of CT A in 16-slice slabs
    for name in sc.list_scenarios():
        s = sc.get_scenario(name, loader=real)
        sc.check_no_overlap(s.train_case_ids(), s.test_case_ids())
    spine = sc.get_scenario("spine-cross-modality", loader=real)
    assert spine.train_case_ids() == ("spineCt_z000-015", "spineCt_z016-030", "spineCt_z031-046")
    assert spine.test_case_ids() == ("spineMr_z000-051",)
    for case, image, label, _ in sc.build_cases(spine, loader=real):
        assert image.shape[2] == case.n_slices and label.shape == image.shape
        assert set(np.unique(label).tolist()) <= set(range(spine_vocabulary().n_labels))
    scanner = sc.get_scenario("cross-scanner", loader=real)
    ((case, image, label, affine),) = sc.build_cases(scenario=scanner, roles=("test",), loader=real)
    assert image.shape == (512, 512, 20) and case.id == "ctB_z000-019"
    present = set(np.unique(label).tolist())
    assert present <= set(range(superclass_vocabulary().n_labels)) and len(present) > 2
