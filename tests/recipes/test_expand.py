"""Offline expansion: layout, provenance, splits, atomicity/resume, refusals, torchrun sharding."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from synthaug.errors import DataError, LeakageError, ValidationError
from synthaug.recipes.expand import (
    PREVIEW_FILE,
    PROVENANCE_DIR,
    check_card_leakage,
    check_case_id,
    expand_dataset,
)
from synthaug.recipes.recipe import derive_seed, load_recipe
from synthaug.weights.registry import card_of
from tests.integrations.nnunet import make_raw_dataset, write_recipe

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[3]


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture
def raw(tmp_path, tiny_weights):
    src = make_raw_dataset(tmp_path / "raw")
    recipe = write_recipe(tmp_path / "recipe.json")
    return SimpleNamespace(src=src, recipe=recipe, root=tmp_path / "raw")


@pytest.mark.nnunet
def test_expansion_layout_provenance_splits_and_nnunet_integrity(raw):
    out = expand_dataset(raw.src, raw.root / "Dataset902_TinyX", recipe=raw.recipe, per_case=2, seed=7, progress=False)
    meta = json.loads((out / "dataset.json").read_text())
    train = [f"case_{i:03d}" for i in range(6)]
    synth = [f"{c}_synthaug{k}" for c in train for k in range(2)]
    assert meta["numTraining"] == 18
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == sorted(f"{c}.nii.gz" for c in train + synth)
    # test cases copied unchanged and never used as a source
    for sub in ("imagesTs", "labelsTs"):
        assert _tree(out / sub) == _tree(raw.src / sub)
    assert not any("case_006_synthaug" in p.name or "case_007_synthaug" in p.name for p in out.rglob("*"))
    # originals byte-identical
    for c in train:
        assert _tree(out / "imagesTr")[f"{c}_0000.nii.gz"] == _tree(raw.src / "imagesTr")[f"{c}_0000.nii.gz"]
    # provenance manifests
    card = card_of("tiny_ct")
    recipe = load_recipe(raw.recipe)
    for sid in synth:
        m = json.loads((out / PROVENANCE_DIR / f"{sid}.json").read_text())
        src_case, k = sid.rsplit("_synthaug", 1)
        assert m["source_case"] == src_case and m["k"] == int(k)
        assert m["seed"] == derive_seed(7, src_case, int(k))
        assert m["generator"]["name"] == "tiny_ct" and m["generator"]["sha256"] == card.sha256 and card.sha256
        assert m["recipe_sha256"] == recipe.sha256() and m["recipe"] == recipe.to_dict()
        for rel, digest in m["files"].items():
            assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest
    assert meta["synthaug_expansion"]["synthetic_cases"] == {s: s.rsplit("_synthaug", 1)[0] for s in synth}
    # splits: nnU-Net's default folds of the originals; synthetic copies only in their source's training folds
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    default = generate_crossval_split(sorted(train), seed=12345, n_splits=5)
    splits = json.loads((out / "splits_final.json").read_text())
    assert len(splits) == 5
    for fold, ref in zip(splits, default):
        assert fold["val"] == list(ref["val"])
        assert not any("_synthaug" in c for c in fold["val"])
        for s in synth:
            assert (s in fold["train"]) == (s.rsplit("_synthaug", 1)[0] in ref["train"])
    assert (out / PREVIEW_FILE).stat().st_size > 0
    assert not list(out.rglob(".*"))  # no temporary leftovers
    # the expanded dataset passes nnU-Net's own integrity check
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(out), num_processes=1)


def test_existing_output_is_never_overwritten(raw):
    existing = raw.root / "Dataset903_Taken"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="never overwrites"):
        expand_dataset(raw.src, existing, recipe=raw.recipe, per_case=1, progress=False)
    assert (existing / "keep.txt").read_text() == "mine" and len(list(existing.iterdir())) == 1
    with pytest.raises(DataError, match="already used"):  # same dataset id as the source, other name
        expand_dataset(raw.src, raw.root / "Dataset901_Other", recipe=raw.recipe, per_case=1, progress=False)
    with pytest.raises(ValidationError, match="DatasetXXX_Name"):
        expand_dataset(raw.src, raw.root / "expanded", recipe=raw.recipe, per_case=1, progress=False)
    with pytest.raises(ValidationError, match="per_case"):
        expand_dataset(raw.src, raw.root / "Dataset904_X", recipe=raw.recipe, per_case=0, progress=False)


class _Kill(Exception):
    pass


def test_killed_run_resumes_to_the_same_files_as_an_uninterrupted_run(tmp_path, tiny_weights):
    src = make_raw_dataset(tmp_path / "raw", shape=(20, 18, 4))
    recipe = write_recipe(tmp_path / "recipe.json")
    full = expand_dataset(src, tmp_path / "a" / "Dataset910_Full", recipe=recipe, per_case=2, seed=3, progress=False)

    out = tmp_path / "b" / "Dataset910_Full"
    work = out.parent / f".{out.name}.synthaug-partial"
    events = []

    def die_mid_case(event, case):  # killed after 3 finished cases, while writing the 4th
        events.append((event, case))
        if event == "case_files_written" and sum(e == "case_done" for e, _ in events) == 3:
            raise _Kill(case)

    with pytest.raises(_Kill):
        expand_dataset(src, out, recipe=recipe, per_case=2, seed=3, progress=False, hook=die_mid_case)
    assert not out.exists() and work.is_dir()
    partial = events[-1][1]
    assert (work / "labelsTr" / f"{partial}.nii.gz").exists() and not (work / PROVENANCE_DIR / f"{partial}.json").exists()
    # a finished case corrupted on disk is detected through its manifest and redone
    done = [c for e, c in events if e == "case_done"]
    (work / "labelsTr" / f"{done[0]}.nii.gz").write_bytes(b"corrupt")

    resumed_events = []
    expand_dataset(src, out, recipe=recipe, per_case=2, seed=3, progress=False,
                   hook=lambda e, c: resumed_events.append((e, c)))
    redone = {c for e, c in resumed_events if e == "case_done"}
    assert partial in redone and done[0] in redone and not redone & set(done[1:])
    assert not work.exists()
    assert _tree(out) == _tree(full)
    # same seed, other output name: identical files; another seed differs
    other = expand_dataset(src, tmp_path / "c" / "Dataset911_Seed", recipe=recipe, per_case=2, seed=4, progress=False)
    assert _tree(other)["imagesTr/case_000_synthaug0_0000.nii.gz"] != _tree(full)["imagesTr/case_000_synthaug0_0000.nii.gz"]


def test_resume_with_other_settings_is_refused(raw):
    out = raw.root / "Dataset905_X"
    with pytest.raises(_Kill):
        expand_dataset(raw.src, out, recipe=raw.recipe, per_case=1, progress=False,
                       hook=lambda e, c: (_ for _ in ()).throw(_Kill()))
    with pytest.raises(DataError, match="partial expansion with other settings"):
        expand_dataset(raw.src, out, recipe=raw.recipe, per_case=2, progress=False)


def test_case_ids_that_escape_or_collide_are_refused(tmp_path, tiny_weights):
    for bad in ("../x", "a/b", "a\\b", "..", ".hidden", "", "a..b"):
        with pytest.raises(ValidationError, match="could name a file outside"):
            check_case_id(bad)
    assert check_case_id("ctA_z000-015") == "ctA_z000-015"
    recipe = write_recipe(tmp_path / "recipe.json")
    evil = make_raw_dataset(tmp_path / "r1", prefix="x..y")
    with pytest.raises(ValidationError, match="could name a file outside"):
        expand_dataset(evil, tmp_path / "r1" / "Dataset920_E", recipe=recipe, per_case=1, progress=False)
    src = make_raw_dataset(tmp_path / "r2")
    for suffix in ("_0000.nii.gz",):
        shutil.copy(src / "imagesTr" / f"case_001{suffix}", src / "imagesTr" / f"case_000_synthaug0{suffix}")
    shutil.copy(src / "labelsTr" / "case_001.nii.gz", src / "labelsTr" / "case_000_synthaug0.nii.gz")
    meta = json.loads((src / "dataset.json").read_text())
    meta["numTraining"] = 7
    (src / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="collide with existing case ids"):
        expand_dataset(src, tmp_path / "r2" / "Dataset921_C", recipe=recipe, per_case=1, progress=False)


def test_dataset_json_that_does_not_match_the_files(tmp_path, tiny_weights):
    recipe = write_recipe(tmp_path / "recipe.json")
    src = make_raw_dataset(tmp_path / "raw")
    meta = json.loads((src / "dataset.json").read_text())
    meta["numTraining"] = 9
    (src / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="numTraining=9 but imagesTr holds 6"):
        expand_dataset(src, tmp_path / "raw" / "Dataset930_X", recipe=recipe, per_case=1, progress=False)
    meta["numTraining"] = 6
    (src / "dataset.json").write_text(json.dumps(meta))
    (src / "labelsTr" / "case_002.nii.gz").unlink()
    with pytest.raises(DataError, match="without a label"):
        expand_dataset(src, tmp_path / "raw" / "Dataset930_X", recipe=recipe, per_case=1, progress=False)
    assert not (tmp_path / "raw" / "Dataset930_X").exists()


def test_generator_trained_on_test_cases_is_refused(tmp_path, tiny_weights):
    cases = [{"id": f"ctA_z{i * 16:03d}-{i * 16 + 15:03d}", "subject": "ct_a", "z_start": i * 16,
              "z_stop": i * 16 + 16, "role": "train", "group": "train"} for i in range(6)]
    leaky = cases + [{"id": "ctA_z080-095", "subject": "ct_a", "z_start": 80, "z_stop": 96, "role": "test",
                      "group": "ct_a_heldout"}]
    recipe = write_recipe(tmp_path / "recipe.json")
    src = make_raw_dataset(tmp_path / "raw", scenario_cases=leaky)
    with pytest.raises(LeakageError, match="tiny_ct.*ctA_z080-095"):  # tiny_ct card: trained on ctA_z000-093
        expand_dataset(src, tmp_path / "raw" / "Dataset940_L", recipe=recipe, per_case=1, progress=False)
    card = card_of("tiny_ct")
    safe = {"synthaug": {"cases": cases + [{"id": "ctB_z000-019", "subject": "ct_b", "z_start": 0, "z_stop": 20,
                                            "role": "test"}]}}
    check_card_leakage(card, safe)  # other subject: fine
    check_card_leakage(card, {"labels": {}})  # no synthaug metadata: nothing to check
    with pytest.raises(LeakageError):
        check_card_leakage(card.replace(training_cases=["ctB_z010-012"]), safe)


@pytest.mark.slow
def test_torchrun_two_ranks_gives_the_same_cases_as_one_process(tmp_path, tiny_weights):
    src = make_raw_dataset(tmp_path / "raw", n_train=5, n_test=1, shape=(24, 24, 1))
    recipe = write_recipe(tmp_path / "recipe.json")
    single = expand_dataset(src, tmp_path / "one" / "Dataset950_T", recipe=recipe, per_case=2, seed=1, progress=False)
    out = tmp_path / "two" / "Dataset950_T"
    out.parent.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "synthaug.cli.main", "expand",
           "--dataset", str(src), "--out", str(out), "--recipe", str(recipe), "--per-case", "2", "--seed", "1",
           "--device", "cpu"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "rank 0/2" in res.stderr and "rank 1/2" in res.stderr  # both ranks worked on their shard
    a, b = _tree(single), _tree(out)
    assert sorted(a) == sorted(b)  # the same set of files
    # per-case seeds do not depend on the sharding: metadata, splits and provenance agree exactly
    for name in ("dataset.json", "splits_final.json"):
        assert a[name] == b[name], name
    for name in (n for n in a if n.startswith(PROVENANCE_DIR)):
        ma, mb = json.loads((single / name).read_text()), json.loads((out / name).read_text())
        assert {k: v for k, v in ma.items() if k != "files"} == {k: v for k, v in mb.items() if k != "files"}
    assert a == b  # and here (CPU, same thread count) even the image bytes
