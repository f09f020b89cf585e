"""Tests of synthaug.data.nnunet_export: the export passes nnU-Net's own integrity check."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from synthaug.data import nnunet_export as ne
from synthaug.data import scenarios as sc
from synthaug.data.spine import spine_subregion_names, spine_vocabulary
from synthaug.data.subjects import TPTBOX_LABEL_SOURCE, Subject
from synthaug.data.vocabulary import superclass_vocabulary, totalsegmentator_vocabulary
from synthaug.errors import DataError, LabelError, SynthAugError, ValidationError


def fake_subject(name: str, shape: tuple[int, int, int], modality: str, seed: int) -> Subject:
    rng = np.random.default_rng(seed)
    vocab = totalsegmentator_vocabulary("total" if modality == "CT" else "total_mr")
    label = rng.choice([0, vocab.index("liver"), vocab.index("spleen")], size=shape).astype(np.int16)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = (-50.0, -40.0, -30.0)
    image = rng.normal(size=shape).astype(np.float32) * (400 if modality == "CT" else 1)
    return Subject(name, image, label, affine, modality, vocab.as_dict(), "TotalSegmentator (test)")


def fake_spine(name: str, shape: tuple[int, int, int], modality: str, seed: int, ids: list[int]) -> Subject:
    rng = np.random.default_rng(seed)
    label = rng.choice([0, *ids], size=shape).astype(np.int16)
    image = rng.normal(size=shape).astype(np.float32)
    return Subject(name, image, label, np.diag([1.5, 1.5, 1.5, 1.0]), modality, spine_subregion_names(modality),
                   TPTBOX_LABEL_SOURCE)  # fmt: skip


SUBJECTS = {
    "spine_ct": fake_spine("spine_ct", (8, 7, 20), "CT", 3, [41, 49, 50]),
    "spine_mr": fake_spine("spine_mr", (7, 8, 9), "MR", 4, [41, 49, 61, 62, 100]),
    "ct_a": fake_subject("ct_a", (10, 9, 24), "CT", 0),
    "ct_b": fake_subject("ct_b", (11, 11, 6), "CT", 1),
    "mr_c": fake_subject("mr_c", (10, 9, 10), "MR", 2),
}


def loader(name: str) -> Subject:
    return SUBJECTS[name]


def nnunet_verify(folder: Path) -> None:
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(folder), num_processes=1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nnUNet_raw")
    return ne.export_nnunet("cross-modality", out, dataset_id=7, loader=loader)


def test_export_layout_and_dataset_json(exported: Path) -> None:
    assert exported.name == "Dataset007_SynthAugCrossModality"
    assert [p.name for p in exported.parent.iterdir()] == [exported.name]  # no temporary leftovers
    meta = json.loads((exported / "dataset.json").read_text())
    vocab = superclass_vocabulary()
    assert meta["labels"] == {"background": 0, **{n: i for i, n in enumerate(vocab.names) if i}}
    assert meta["channel_names"] == {"0": "zscore"}  # MR test images: nnU-Net z-score, not CT normalisation
    assert meta["file_ending"] == ".nii.gz" and meta["numTraining"] == 2
    assert "TotalSegmentator" in meta["reference"] and "not manual ground truth" in meta["description"]
    assert "cross-modality" in meta["description"] and meta["synthaug"]["scenario"] == "cross-modality"
    assert meta["synthaug"]["test_groups"] == {"mr_c_lower": ["mrC_z000-004"], "mr_c_all": ["mrC_z000-009"]}
    assert sorted(p.name for p in (exported / "imagesTr").iterdir()) == [
        "ctA_z000-011_0000.nii.gz",
        "ctA_z012-023_0000.nii.gz",
    ]
    assert sorted(p.name for p in (exported / "labelsTs").iterdir()) == [
        "mrC_z000-004.nii.gz",
        "mrC_z000-009.nii.gz",
    ]
    # the generator slab: image only, in imagesGen (never a label, never in imagesTr/imagesTs), listed as such
    assert [p.name for p in (exported / "imagesGen").iterdir()] == ["mrC_z005-009_0000.nii.gz"]
    assert not list(exported.glob("labels*/mrC_z005-009*")) and not list(exported.glob("imagesT*/mrC_z005-009*"))
    gen = [c for c in meta["synthaug"]["cases"] if c["id"] == "mrC_z005-009"]
    assert len(gen) == 1 and gen[0]["role"] == "generator"
    assert "mrC_z005-009" not in json.dumps(meta["synthaug"]["test_groups"])


def test_exported_files_have_dtypes_and_affines(exported: Path) -> None:
    img = nib.load(exported / "imagesTr" / "ctA_z012-023_0000.nii.gz")
    seg = nib.load(exported / "labelsTr" / "ctA_z012-023.nii.gz")
    assert img.get_data_dtype() == np.float32 and seg.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(img.dataobj), SUBJECTS["ct_a"].image[:, :, 12:24])
    expected = SUBJECTS["ct_a"].affine.copy()
    expected[2, 3] += 12 * 3.0
    np.testing.assert_allclose(img.affine, expected)
    np.testing.assert_allclose(seg.affine, expected)
    assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1


@pytest.mark.slow
def test_export_passes_nnunet_integrity_check(exported: Path) -> None:
    nnunet_verify(exported)
    assert ne.check_nnunet_raw(exported) == {"numTraining": 2, "numTest": 2}


def test_ct_only_scenario_uses_ct_normalisation(tmp_path: Path) -> None:
    folder = ne.export_nnunet("in-domain", tmp_path, dataset_id=8, name="Dom", loader=loader)
    meta = json.loads((folder / "dataset.json").read_text())
    assert folder.name == "Dataset008_Dom" and meta["channel_names"] == {"0": "CT"}
    assert meta["synthaug"]["test_groups"] == {"ct_a_heldout": ["ctA_z008-023"]}


def test_spine_scenario_export(tmp_path: Path) -> None:
    folder = ne.export_nnunet("spine-cross-modality", tmp_path, dataset_id=14, loader=loader)
    assert folder.name == "Dataset014_SynthAugSpineCrossModality"
    meta = json.loads((folder / "dataset.json").read_text())
    vocab = spine_vocabulary()
    assert meta["labels"] == {"background": 0, **{n: i for i, n in enumerate(vocab.names) if i}}
    assert meta["channel_names"] == {"0": "zscore"} and meta["numTraining"] == 1
    assert meta["synthaug"]["label_space"] == "spine" and meta["synthaug"]["test_groups"] == {
        "spine_mr": ["spineMr_z000-008"]
    }
    assert "TPTBox" in meta["reference"] and "TotalSegmentator" not in meta["reference"]
    assert "TPTBox" in meta["synthaug"]["label_note"] and "TotalSegmentator" not in meta["description"]
    seg = np.asarray(nib.load(folder / "labelsTs" / "spineMr_z000-008.nii.gz").dataobj)
    assert set(np.unique(seg).tolist()) == {0, vocab.index("vertebral_body"), vocab.index("vertebral_arch")}
    assert ne.check_nnunet_raw(folder) == {"numTraining": 1, "numTest": 1}
    nnunet_verify(folder)


def test_no_class_shared_between_training_and_test_is_refused(tmp_path: Path) -> None:
    subjects = {
        "spine_ct": fake_spine("spine_ct", (6, 6, 10), "CT", 5, [42, 43]),  # spinous + transverse processes only
        "spine_mr": fake_spine("spine_mr", (6, 6, 8), "MR", 6, [49, 60, 100]),  # vertebral body only
    }
    with pytest.raises(LabelError, match=r"\[.spinous_process., .transverse_processes.\].*holds \[.vertebral_body.\]; they share no foreground"):
        ne.export_nnunet("spine-cross-modality", tmp_path, dataset_id=15, loader=subjects.__getitem__)
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_zero_test_volumes_are_refused(tmp_path: Path) -> None:
    scenario = sc.Scenario(
        "toy", "toy cases", (sc.Case("s_a", 0, 4, "train", "tr"), sc.Case("s_a", 6, 9, "test", "te"))
    )
    rng = np.random.default_rng(1)
    train_only = [
        (c, rng.normal(size=(5, 6, c.n_slices)).astype(np.float32), np.ones((5, 6, c.n_slices), np.int16), np.eye(4))
        for c in scenario.cases if c.role == "train"
    ]  # fmt: skip
    with pytest.raises(ValidationError, match="0 test volumes"):
        ne.export_nnunet(scenario, tmp_path, dataset_id=16, cases=train_only, label_names=["bg", "a"])
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite(exported: Path) -> None:
    before = sorted(p.name for p in exported.rglob("*"))
    with pytest.raises(DataError, match="already exists.*--dataset-id"):
        ne.export_nnunet("cross-modality", exported.parent, dataset_id=7, loader=loader)
    with pytest.raises(DataError, match="Dataset id 007 is already used.*Dataset007_SynthAugCrossModality"):
        ne.export_nnunet("cross-scanner", exported.parent, dataset_id=7, name="Other", loader=loader)
    assert sorted(p.name for p in exported.rglob("*")) == before
    assert [p.name for p in exported.parent.iterdir()] == [exported.name]


@pytest.mark.parametrize("dataset_id", [0, 1000, -3, True, "5", 2.0])
def test_dataset_id_validated(tmp_path: Path, dataset_id: object) -> None:
    with pytest.raises(ValidationError, match="dataset_id must be an int in 1..999"):
        ne.export_nnunet("in-domain", tmp_path, dataset_id=dataset_id, loader=loader)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())


def test_name_validated(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="letters, digits"):
        ne.export_nnunet("in-domain", tmp_path, dataset_id=3, name="bad name/", loader=loader)


def test_prebuilt_cases_and_label_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    scenario = sc.Scenario(
        "toy",
        "toy cases",
        (sc.Case("s_a", 0, 4, "train", "tr"), sc.Case("s_a", 6, 9, "test", "te")),
    )
    affine = np.eye(4)
    cases = [
        (
            c,
            rng.normal(size=(5, 6, c.n_slices)).astype(np.float32),
            rng.integers(0, 3, size=(5, 6, c.n_slices)).astype(np.int16),
            affine,
        )
        for c in scenario.cases
    ]
    folder = ne.export_nnunet(scenario, tmp_path, dataset_id=12, cases=cases, label_names=["bg", "a", "b"])
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "a": 1, "b": 2} and folder.name == "Dataset012_SynthAugToy"
    assert ne.check_nnunet_raw(folder) == {"numTraining": 1, "numTest": 1}
    bad = [(cases[0][0], cases[0][1], np.full((5, 6, 4), 3, np.int16), affine)]
    with pytest.raises(LabelError, match="outside 0..2"):
        ne.export_nnunet(scenario, tmp_path, dataset_id=13, cases=bad, label_names=["bg", "a", "b"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]  # failed export left nothing behind


# --- check_nnunet_raw on folders that are not what they claim -------------------------------------


@pytest.fixture
def copy_of(exported: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(exported, tmp_path / exported.name))


def _edit_json(folder: Path, **changes: object) -> None:
    meta = json.loads((folder / "dataset.json").read_text())
    meta.update(changes)
    (folder / "dataset.json").write_text(json.dumps(meta))


def test_check_missing_dataset_json(copy_of: Path) -> None:
    (copy_of / "dataset.json").unlink()
    with pytest.raises(DataError, match="no dataset.json"):
        ne.check_nnunet_raw(copy_of)


def test_check_num_training_mismatch_caught_by_both(copy_of: Path) -> None:
    _edit_json(copy_of, numTraining=3)
    with pytest.raises(DataError, match="numTraining=3 but imagesTr holds 2"):
        ne.check_nnunet_raw(copy_of)
    with pytest.raises(AssertionError, match="expected number of training cases"):
        nnunet_verify(copy_of)


def test_check_image_without_label(copy_of: Path) -> None:
    (copy_of / "labelsTr" / "ctA_z000-011.nii.gz").unlink()
    with pytest.raises(DataError, match=r"image\(s\) without a label.*ctA_z000-011"):
        ne.check_nnunet_raw(copy_of)
    with pytest.raises(AssertionError, match="label file"):
        nnunet_verify(copy_of)


def test_check_label_without_image(copy_of: Path) -> None:
    (copy_of / "imagesTs" / "mrC_z000-004_0000.nii.gz").unlink()
    with pytest.raises(DataError, match=r"label\(s\) without an image.*mrC_z000-004"):
        ne.check_nnunet_raw(copy_of)


def test_check_undeclared_label_value(copy_of: Path) -> None:
    labels = json.loads((copy_of / "dataset.json").read_text())["labels"]
    _edit_json(copy_of, labels={k: v for k, v in labels.items() if v < 2})
    seg = copy_of / "labelsTr" / "ctA_z000-011.nii.gz"
    img = nib.load(seg)
    data = np.asarray(img.dataobj).copy()
    data[0, 0, 0] = 5
    nib.save(nib.Nifti1Image(data, img.affine, img.header), seg)
    with pytest.raises(DataError, match=r"value\(s\) \[.*5.*\] that dataset.json 'labels' does not declare"):
        ne.check_nnunet_raw(copy_of)


def test_check_labels_not_consecutive(copy_of: Path) -> None:
    _edit_json(copy_of, labels={"background": 0, "liver": 2})
    with pytest.raises(DataError, match="consecutive"):
        ne.check_nnunet_raw(copy_of)


def test_check_shape_and_affine_mismatch(copy_of: Path) -> None:
    seg_path = copy_of / "labelsTr" / "ctA_z000-011.nii.gz"
    seg = nib.load(seg_path)
    data = np.asarray(seg.dataobj)
    nib.save(nib.Nifti1Image(data[:-1], seg.affine), seg_path)
    with pytest.raises(DataError, match="has shape"):
        ne.check_nnunet_raw(copy_of)
    shifted = seg.affine.copy()
    shifted[0, 3] += 5.0
    nib.save(nib.Nifti1Image(data, shifted), seg_path)
    with pytest.raises(DataError, match="different affines"):
        ne.check_nnunet_raw(copy_of)


def test_check_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a folder"):
        ne.check_nnunet_raw(tmp_path / "nope")


def test_cli_export_nnunet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from synthaug.cli import data_export
    from synthaug.data import subjects

    monkeypatch.setattr(subjects, "load_subject", loader)
    parser = argparse.ArgumentParser(prog="synthaug data")
    data_export.register(parser.add_subparsers(dest="data_command"))
    argv = ["export-nnunet", "--scenario", "cross-scanner", "--out", str(tmp_path), "--dataset-id", "42"]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == str(tmp_path / "Dataset042_SynthAugCrossScanner")
    assert ne.check_nnunet_raw(printed)["numTraining"] == 2
    with pytest.raises(SynthAugError, match="already"):
        args.func(args)
    bad = parser.parse_args(
        ["export-nnunet", "--scenario", "cross-scaner", "--out", str(tmp_path), "--dataset-id", "1"]
    )
    with pytest.raises(ValidationError, match="Did you mean 'cross-scanner'"):
        bad.func(bad)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scenario", "cross-scaner", "--dataset-id", "1"], "Did you mean 'cross-scanner'"),
        (["--scenario", "in-domain", "--dataset-id", "0"], "dataset_id must be an int in 1..999"),
        (["--scenario", "in-domain", "--dataset-id", "4", "--name", "a b"], "letters, digits"),
    ],
)
def test_main_reports_errors_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, argv: list, message: str
) -> None:
    from synthaug.cli.main import main

    assert main(["data", "export-nnunet", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("synthaug data: error:") and message in err and "\n" not in err
    assert not any(tmp_path.iterdir())


@pytest.mark.data
def test_real_export_cross_modality(tmp_path: Path, subjects: dict[str, Subject]) -> None:
    folder = ne.export_nnunet("cross-modality", tmp_path, dataset_id=501, loader=subjects.__getitem__)
    counts = ne.check_nnunet_raw(folder)
    assert counts == {"numTraining": 7, "numTest": 2}
    nnunet_verify(folder)
    seg = np.asarray(nib.load(folder / "labelsTs" / "mrC_z000-009.nii.gz").dataobj)
    assert seg.shape == (117, 91, 10) and seg.max() > 0
