"""Translation data from a spec text: the simulator (any contrast pair), NIfTI folders, simulate-mr output,
nnU-Net raw datasets; deterministic held-out splits and clear errors for bad input."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import synthaug.training.translate_data as td
from synthaug.data.mr_simulator import SEQUENCE_PRESETS, simulate_subjects, write_simulated_mr
from synthaug.errors import DataError, SynthAugError, ValidationError
from synthaug.training.translate_spec import (
    BuiltinData,
    FolderData,
    NnunetChannels,
    SimulatedPair,
    SubjectFolders,
    parse_translation_spec,
    split_cases,
)
from tests.training.test_train_translate import _subject

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def write(path: Path, array: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(array), affine), str(path))
    return path


def paired_folders(root: Path, n: int = 5, *, shape=(24, 28, 12)) -> tuple[Path, Path]:
    """``root/T1w/case_XXX.nii.gz`` and ``root/PDw/case_XXX.nii.gz``: phantom pairs on one grid."""
    for i in range(n):
        src, tgt, _ = _subject(i, shape=shape)
        write(root / "T1w" / f"case_{i:03d}.nii.gz", src)
        write(root / "PDw" / f"case_{i:03d}.nii.gz", tgt)
    return root / "T1w", root / "PDw"


def nnunet_dataset(root: Path, n: int = 5, *, n_test: int = 0, channels=("T1", "T2"), name="Dataset901_Pairs") -> Path:
    """A two-channel nnU-Net raw dataset of phantoms (labels included); ``n_test`` cases in imagesTs."""
    ds = root / name
    for i in range(n + n_test):
        split = "Tr" if i < n else "Ts"
        src, tgt, lab = _subject(i)
        write(ds / f"images{split}" / f"case_{i:03d}_0000.nii.gz", src)
        write(ds / f"images{split}" / f"case_{i:03d}_0001.nii.gz", tgt)
        write(ds / f"labels{split}" / f"case_{i:03d}.nii.gz", lab.astype(np.uint8))
    meta = {"channel_names": {str(k): c for k, c in enumerate(channels)}, "file_ending": ".nii.gz", "numTraining": n,
            "labels": {"background": 0, "body": 1, "a": 2, "b": 3}}
    (ds / "dataset.json").write_text(json.dumps(meta))
    return ds


def _held_out_never_trained(data) -> None:
    train = {i.partition(":")[0] for i in data.training_cases(True) + data.training_cases(False)}
    test = {i.partition(":")[0] for i in data.case_ids["test"]}
    assert test and not train & test


# ------------------------------------------------------------------------------------------ parsing


def test_specs_parse_once_to_typed_records_with_a_canonical_text(tmp_path):
    src, tgt = paired_folders(tmp_path, 3)
    assert parse_translation_spec("brain_t1_t2") == BuiltinData("brain_t1_t2")
    assert parse_translation_spec("simulated:T1w:PDw") == SimulatedPair("T1w", "PDw")
    rel = parse_translation_spec(f"folder:{src}:{tgt}")
    assert isinstance(rel, FolderData) and rel.paired and (rel.source_name, rel.target_name) == ("T1w", "PDw")
    named = parse_translation_spec(f"unpaired-folder:{src}:{tgt}:A:B")
    assert not named.paired and (named.source_name, named.target_name) == ("A", "B")
    for spec in (rel, named, SimulatedPair("PDw", "T2w"), NnunetChannels(tmp_path, "0", tmp_path, "1"),
                 NnunetChannels(tmp_path / "a", "0", tmp_path / "b", "0"), SubjectFolders(tmp_path, "T1w", "PDw")):
        assert parse_translation_spec(spec.text) == spec  # the text a card records parses back to the record
    assert parse_translation_spec(rel) is rel


def test_every_contrast_pair_the_simulator_renders_is_accepted():
    for a, b in itertools.permutations(SEQUENCE_PRESETS, 2):
        assert parse_translation_spec(f"simulated:{a}:{b}").text == f"simulated:{a}:{b}"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("simulated:T1w:FLAIR", ["cannot render", "FLAIR", "SequencePreset"]),
        ("simulated:t1w:PDw", ["Did you mean 'T1w'"]),
        ("simulated:T1w:T1w", ["to itself"]),
        ("simulated:T1w", ["two contrasts"]),
        ("simulatd:T1w:PDw", ["unknown kind", "Did you mean 'simulated'"]),
        ("nnunet:/x", ["DATASET:SRC_CHANNEL:TGT_CHANNEL"]),
        ("folder:/definitely/not/here:/tmp", ["does not exist"]),
        ("/tmp", ["is a path", "folder:SRC_DIR:TGT_DIR"]),
        ("", ["spec text"]),
    ],
)
def test_bad_spec_texts_name_the_problem_and_the_fix(text, words):
    with pytest.raises(SynthAugError) as err:
        parse_translation_spec(text)
    for w in words:
        assert w in str(err.value)


def test_split_is_deterministic_disjoint_and_needs_enough_cases():
    names = [f"c{i:02d}" for i in range(20)]
    a = split_cases(names, paired=True)
    assert a == split_cases(list(reversed(names)), paired=True)  # order of listing does not matter
    assert (len(a["test"]), len(a["validation"]), len(a["train"])) == (4, 2, 14)
    assert set(a["train"]).isdisjoint(a["test"]) and set(a["validation"]).isdisjoint(a["test"])
    assert sorted(a["train"] + a["validation"] + a["test"]) == names
    assert split_cases(names, paired=False)["validation"] == ()
    fixed = split_cases(names, paired=True, fixed_test=("c03",))
    assert fixed["test"] == ("c03",) and "c03" not in fixed["train"] + fixed["validation"]
    with pytest.raises(DataError, match="too few.*at least 3"):
        split_cases(["a", "b"], paired=True)


# ------------------------------------------------------------------------------------------ folders


def test_paired_folder_reads_matching_files_and_holds_cases_out(tmp_path):
    src, tgt = paired_folders(tmp_path, 5)
    data = td.get_translation_data(f"folder:{src}:{tgt}")
    assert data.paired and (data.source_modality, data.target_modality) == ("T1w", "PDw") and not data.simulated
    assert len(data.case_ids["test"]) == 2 and len(data.case_ids["validation"]) == 2  # 1 case each, two images
    _held_out_never_trained(data)
    train = data.split("train_paired")
    assert len(train) == 3 and all(c.paired and c.source.shape == (24, 28, 12) for c in train)
    raw = nib.load(str(src / f"{train[0].case_id}.nii.gz")).get_fdata()
    np.testing.assert_allclose(train[0].source, raw, rtol=1e-6)
    assert data.size == 32 and data.spacing == 2.0
    assert data.split("test")[0].target is not None and data.split("reference")[0].source is None


def test_unpaired_folder_holds_out_a_subject_on_both_sides(tmp_path):
    for i in range(6):
        src, tgt, _ = _subject(i)
        write(tmp_path / "ct" / f"p{i}.nii.gz", src)
        write(tmp_path / "mr" / f"{'p' if i < 3 else 'q'}{i}.nii.gz", tgt)  # p0-p2 exist on both sides
    data = td.get_translation_data(f"unpaired-folder:{tmp_path / 'ct'}:{tmp_path / 'mr'}:CT:MR")
    assert not data.paired and data.case_ids["train_paired"] == () and data.case_ids["test_target"]
    test = {i.partition(":")[0] for i in data.case_ids["test"]}
    trained = {i.partition(":")[0] for i in data.training_cases(False)}
    assert not test & trained
    assert data.split("train_target")[0].source is None and data.split("test")[0].target is None


def test_folder_errors_name_the_fix(tmp_path):
    (tmp_path / "empty").mkdir()
    src, tgt = paired_folders(tmp_path / "ok", 3)
    with pytest.raises(DataError, match="no NIfTI files"):
        td.get_translation_data(f"folder:{tmp_path / 'empty'}:{tgt}")
    for i in range(3):
        write(tmp_path / "other" / f"x{i}.nii.gz", np.ones((4, 4, 4), np.float32))
    with pytest.raises(DataError, match="no NIfTI pairs.*unpaired-folder"):
        td.get_translation_data(f"folder:{src}:{tmp_path / 'other'}")
    write(tgt / "case_001.nii.gz", np.ones((24, 28, 10), np.float32))
    with pytest.raises(DataError, match=r"case_001.*\(24, 28, 12\).*\(24, 28, 10\).*Resample"):
        td.get_translation_data(f"folder:{src}:{tgt}")
    write(tgt / "case_001.nii.gz", np.ones((24, 28, 12), np.float32), np.diag([1.0, 1.0, 1.0, 1.0]))
    with pytest.raises(DataError, match="different affines"):
        td.get_translation_data(f"folder:{src}:{tgt}")
    with pytest.raises(ValidationError, match="both named"):
        parse_translation_spec(f"folder:{src}:{src}")
    s2, t2 = paired_folders(tmp_path / "two", 2)
    with pytest.raises(DataError, match="too few"):
        td.get_translation_data(f"folder:{s2}:{t2}")


def test_unmatched_files_of_a_paired_folder_are_reported(tmp_path):
    src, tgt = paired_folders(tmp_path, 4)
    write(src / "lonely.nii.gz", np.ones((24, 28, 12), np.float32))
    with pytest.warns(UserWarning, match="lonely"):
        data = td.get_translation_data(f"folder:{src}:{tgt}")
    assert not any("lonely" in i for ids in data.case_ids.values() for i in ids)


# ------------------------------------------------------------------------------------------ simulator


def test_simulated_pair_is_the_builtin_layout_for_any_contrasts(phantom_simulator):
    data = td.get_translation_data("simulated:T1w:PDw")
    builtin = td.TRANSLATION_DATA["brain_t1_t2"]()
    assert (data.source_modality, data.target_modality, data.simulated) == ("T1w", "PDw", True)
    assert [i.partition(":")[0] for i in data.case_ids["test"]] == [i.partition(":")[0] for i in builtin.case_ids["test"]]
    case = data.split("test")[0]
    wm, csf = case.label == 3, case.label == 1
    assert case.source[wm].mean() > case.source[csf].mean()  # T1w: WM brighter than CSF
    assert case.target[csf].mean() > case.target[wm].mean()  # PDw: CSF brighter than WM
    _held_out_never_trained(data)


def test_simulate_mr_output_is_readable_as_subject_folders(tmp_path, phantom_simulator):
    sims = simulate_subjects(phantom_simulator, n=4, seed=1, spacing=2.0)
    out = write_simulated_mr(sims, tmp_path / "sim")
    data = td.get_translation_data(f"subjects:{out}:T1w:PDw")
    assert data.simulated and data.paired and data.label_names == ("background", "csf", "gray_matter", "white_matter")
    case = data.split("test")[0]
    sim = next(s for s in sims if s.name == case.case_id)
    np.testing.assert_allclose(case.target, sim.images["PDw"], rtol=1e-6)
    np.testing.assert_array_equal(case.label, sim.label)
    with pytest.raises(DataError, match="holds both T1w.nii.gz and FLAIR.nii.gz.*files seen"):
        td.get_translation_data(f"subjects:{out}:T1w:FLAIR")


# ------------------------------------------------------------------------------------------ nnU-Net


def test_nnunet_channels_by_index_or_name_and_its_own_test_set(tmp_path):
    ds = nnunet_dataset(tmp_path, 4, n_test=1)
    by_index = td.get_translation_data(f"nnunet:{ds}:0000:1")
    by_name = td.get_translation_data(f"nnunet:{ds}:t1:T2")
    assert (by_name.source_modality, by_name.target_modality) == ("T1", "T2")
    assert by_index.case_ids == by_name.case_ids
    assert {i.partition(":")[0] for i in by_name.case_ids["test"]} == {f"{ds.name}/case_004"}  # imagesTs
    assert by_name.label_names == ("background", "body", "a", "b")
    test = by_name.split("test")[0]
    assert test.label is not None and test.label.max() == 3
    _held_out_never_trained(by_name)


def test_nnunet_unpaired_from_two_datasets(tmp_path):
    a = nnunet_dataset(tmp_path, 4, channels=("CT",), name="Dataset902_A")
    b = nnunet_dataset(tmp_path, 4, channels=("MR", "X"), name="Dataset903_B")
    data = td.get_translation_data(f"nnunet:{a}:CT:{b}:MR")
    assert not data.paired and (data.source_modality, data.target_modality) == ("CT", "MR")
    assert all(i.startswith("Dataset902_A/") for i in data.case_ids["train_source"])
    assert all(i.startswith("Dataset903_B/") for i in data.case_ids["train_target"] + data.case_ids["test_target"])


def test_nnunet_errors_name_the_fix(tmp_path):
    ds = nnunet_dataset(tmp_path, 4)
    with pytest.raises(DataError, match=r"no channel '0002'.*0000 \(T1\), 0001 \(T2\)"):
        td.get_translation_data(f"nnunet:{ds}:0000:0002")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match="no dataset.json.*data=folder:"):
        td.get_translation_data(f"nnunet:{tmp_path / 'plain'}:0:1")
    with pytest.raises(ValidationError, match="same channel"):
        td.get_translation_data(f"nnunet:{ds}:0:T1")
