"""Downstream benchmark harness: leakage refusal, resumability, the report from stored results, and an
end-to-end run on a tiny dataset with the ``smoke`` profile (real nnU-Net commands on CPU)."""

import json
import os

import numpy as np
import pytest

from synthaug.benchmark.arms import Arm, arms_from_file, builtin_arms, select_arms
from synthaug.benchmark.downstream import check_leakage, load_results, open_dataset, run_benchmark
from synthaug.benchmark.profiles import PROFILES, Profile, get_profile
from synthaug.benchmark.report import arm_kind, markdown_report, mean_ci, summarise
from synthaug.errors import DataError, LeakageError, ValidationError
from tests.integrations.nnunet import make_raw_dataset

CONTEXT = {"name": "context_texture", "probability": 1.0,
           "deform": {"enabled": True, "control_points": 3, "max_displacement": 2.0},
           "options": {"weights": "tiny_ct", "features": "perturb", "perturbation": 0.1}}


def _card(tmp, name, training_cases):
    """The tiny_ct network published again under ``name`` with other training cases on its card."""
    from synthaug.weights import registry
    from synthaug.weights.store import save_weights

    net, card = registry.load("tiny_ct")
    stored = save_weights(net, card.replace(name=name, training_cases=tuple(training_cases), sha256=""),
                          tmp / "files" / f"{name}.safetensors")
    (tmp / "cards" / f"{name}.json").write_text(stored.to_json())
    registry.clear_cache()
    return name


def test_profiles_validate_and_patch_plans():
    quick = get_profile("cpu-quick")
    assert quick.configuration == "2d" and len(quick.seeds) == 2 and quick.device == "cpu"
    plans = {"configurations": {"2d": {"batch_size": 5, "architecture": {"arch_kwargs": {
        "features_per_stage": [32, 64, 128, 256, 512]}}}}}
    patched = quick.patch_plans(plans)
    assert patched["configurations"]["2d"]["architecture"]["arch_kwargs"]["features_per_stage"] == [16, 32, 64, 128, 128]
    assert plans["configurations"]["2d"]["architecture"]["arch_kwargs"]["features_per_stage"][0] == 32  # untouched
    assert patched["plans_name"] == quick.plans
    with pytest.raises(ValidationError, match="needs its own plans name"):
        Profile("x", plans="nnUNetPlans", features_cap=8)
    with pytest.raises(ValidationError, match="Did you mean 'cpu-quick'"):
        get_profile("cpu_quick")
    with pytest.raises(ValidationError, match="3d_fullres"):
        PROFILES["full"].patch_plans(plans)


def test_arms_builtin_file_and_selection(tmp_path, tiny_weights):
    from synthaug.weights.registry import list_weights

    meta = {"labels": {"background": 0, "a": 1, "b": 2, "c": 3}}
    arms = builtin_arms(meta, cards=[c for c in list_weights() if c.name == "tiny_ct"])
    names = [a.name for a in arms]
    assert names == ["default", "synthseg", "heavy_intensity", "gaussian_mixture_mixed", "context", "combined",
                     "expansion"]
    by = {a.name: a for a in arms}
    assert arms[0].recipe == {"transforms": []} and arms[-1].is_expansion and by["context"].weights() == ["tiny_ct"]
    # the strong non-learned baselines as their authors run them: every sample, the shipped recipes
    assert [t["probability"] for t in by["synthseg"].recipe["transforms"]] == [1.0]
    assert [t["name"] for t in by["heavy_intensity"].recipe["transforms"]] == ["heavy_intensity"]
    assert [t["probability"] for t in by["gaussian_mixture_mixed"].recipe["transforms"]] == [0.5]
    combo = by["combined"].recipe["transforms"]
    assert abs(sum(t["probability"] for t in combo) - 0.5) < 1e-9
    # labels no generator covers: only the generator-free arms
    assert [a.name for a in builtin_arms({"labels": {"background": 0, "tumour": 1}}, cards=list_weights())] == [
        "default", "synthseg", "heavy_intensity", "gaussian_mixture_mixed"]
    assert [a.name for a in select_arms(arms, ["context"])] == ["default", "context"]
    with pytest.raises(ValidationError, match="unknown arm"):
        select_arms(arms, ["contxt"])
    f = tmp_path / "arms.json"
    f.write_text(json.dumps([{"name": "ctx", "recipe": {"transforms": [CONTEXT]}},
                             {"name": "exp", "expansion": {"recipe": {"transforms": [CONTEXT]}, "per_case": 1}}]))
    loaded = arms_from_file(f)
    assert [a.name for a in loaded] == ["default", "ctx", "exp"] and loaded[2].per_case == 1
    assert loaded[1].fingerprint() != loaded[2].fingerprint()
    f.write_text(json.dumps([{"name": "x", "recipes": {}}]))
    with pytest.raises(ValidationError, match="unknown key"):
        arms_from_file(f)
    with pytest.raises(ValidationError, match="arm name"):
        Arm("Bad Name", "")


def test_open_dataset_refuses_what_is_not_a_benchmark_dataset(tmp_path):
    folder = make_raw_dataset(tmp_path / "raw", dataset_id=971, name="Bench", shape=(16, 16, 1))
    ds = open_dataset(folder)
    assert ds.dataset_id == 971 and len(ds.train_ids) == 6 and ds.test_ids == ("case_006", "case_007")
    assert ds.groups == {"test": ds.test_ids}
    (folder / "labelsTs" / "case_007.nii.gz").unlink()
    with pytest.raises(DataError, match="without a label in labelsTs"):
        open_dataset(folder)
    import shutil

    shutil.rmtree(folder / "labelsTs")
    with pytest.raises(DataError, match="no labelled test split"):
        open_dataset(folder)
    with pytest.raises(DataError, match="not a folder"):
        open_dataset(tmp_path / "missing")


def test_open_dataset_and_the_trainers_test_split_hold_out_the_same_cases(tmp_path):
    """One rule (synthaug.data.held_out): a report-only group is scored but not held out on every path, and a
    labelsTs case in no evaluation group (neither trained on nor scored) is refused with the fix."""
    from synthaug.recipes.leakage import TestSplit

    folder = make_raw_dataset(tmp_path / "raw", dataset_id=973, name="Groups", shape=(16, 16, 1))
    meta = json.loads((folder / "dataset.json").read_text())
    meta["synthaug"] = {"test_groups": {"lower": ["case_006"], "all": ["case_007"]},
                        "cases": [{"id": "case_006", "role": "test"}, {"id": "case_007", "role": "report"}]}
    (folder / "dataset.json").write_text(json.dumps(meta))
    ds = open_dataset(folder)
    assert ds.test_ids == ("case_006",) == TestSplit.from_raw_dataset(folder).ids
    assert ds.held_out_groups == ("lower",) and ds.groups_cases() == ["case_006", "case_007"]
    meta["synthaug"]["test_groups"] = {"lower": ["case_006"]}
    (folder / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"case_007.*no test group.*Add them to a group"):
        open_dataset(folder)
    meta["synthaug"]["test_groups"] = {"all": ["case_007"]}
    (folder / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="case_006"):
        open_dataset(folder)


def test_leakage_check_refuses_a_generator_trained_on_a_test_case(tmp_path, tiny_weights):
    folder = make_raw_dataset(tmp_path / "raw", dataset_id=972, name="Leak", shape=(16, 16, 1))
    ds = open_dataset(folder)
    ok = Arm("ctx", "", {"transforms": [CONTEXT]})
    assert check_leakage(ds, [Arm("default", ""), ok]) == {"tiny_ct": ["ctA_z000-093"]}
    leaky = _card(tiny_weights, "tiny_leaky", ["case_000", "case_007"])
    bad = Arm("leaky", "", {"transforms": [{**CONTEXT, "options": {**CONTEXT["options"], "weights": leaky}}]})
    with pytest.raises(LeakageError, match="case_007"):
        check_leakage(ds, [Arm("default", ""), bad])
    # an expansion arm is checked the same way, and the harness refuses before any work
    exp = Arm("exp", "", expansion_recipe={"transforms": [{**CONTEXT, "options": {**CONTEXT["options"], "weights": leaky}}]})
    with pytest.raises(LeakageError, match="tiny_leaky"):
        run_benchmark(folder, tmp_path / "work", get_profile("smoke"), [Arm("default", ""), exp])
    assert not (tmp_path / "work" / "runs").exists()
    # a card without training cases cannot be proven clean
    blank = _card(tiny_weights, "tiny_blank", [])
    with pytest.raises(LeakageError, match="no training cases"):
        check_leakage(ds, [Arm("b", "", {"transforms": [{**CONTEXT, "options": {"weights": blank}}]})])
    # synthaug scenario datasets are compared by subject and slice range
    meta = json.loads((folder / "dataset.json").read_text())
    meta["synthaug"] = {"cases": [{"id": "ctA_z090-099", "subject": "ct_a", "z_start": 90, "z_stop": 100, "role": "test"}]}
    (folder / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(LeakageError, match="ctA_z090-099"):
        check_leakage(open_dataset(folder), [Arm("default", ""), ok])


def _result(arm, seed, dice_a, dice_b, case="t1"):
    slices = [{"a": dice_a, "b": None}, {"a": None, "b": dice_b}]
    return {"arm": arm, "seed": seed, "cases": {case: {"a": dice_a, "b": dice_b}}, "slices": {case: slices},
            "train_seconds": 10.0,
            "predict_seconds": 1.0, "peak_rss_mb": 100.0,
            "synthaug_log": [{"synthetic_fraction": 0.5}] if arm != "default" else []}


def test_report_is_built_from_stored_results_and_shows_a_loss_plainly():
    meta = {"dataset": "Dataset999_Fixture", "arms": [{"name": "default", "description": "d"},
                                                       {"name": "worse", "description": "w"}],
            "profile": {**get_profile("smoke").to_dict()}, "train_cases": ["c0"], "test_cases": ["t1", "t2"],
            "groups": {"test": ["t1", "t2"]}, "held_out_groups": ["test"], "generator_training_cases": {"g": ["c0"]}}
    results = [_result("default", 0, 0.8, 0.6), _result("default", 0, 0.7, None, "t2"),
               _result("default", 1, 0.9, 0.7), _result("default", 1, 0.7, 0.5, "t2"),
               _result("worse", 0, 0.6, 0.4), _result("worse", 0, 0.5, None, "t2"),
               _result("worse", 1, 0.7, 0.5), _result("worse", 1, 0.5, 0.3, "t2")]
    s = summarise(meta, results)
    g = s["groups"]["test"]["arms"]
    assert g["default"]["n"] == 4 and abs(g["default"]["mean"] - (0.7 + 0.7 + 0.8 + 0.6) / 4) < 1e-9
    d = g["worse"]["diff"]
    assert abs(d["mean"] - (-0.2)) < 1e-9 and d["high"] <= -0.2 + 1e-9  # every paired unit lost 0.2
    assert abs(g["worse"]["per_class"]["a"] - 0.575) < 1e-9
    md = markdown_report(meta, results, title="T", command="cmd", machine="m", date="d")
    assert "| worse | 50.0 |" in md and "-20.0" in md and "| default | 70.0 |" in md
    assert "`g`: c0" in md and "Command: `cmd`" in md and "Slice level" in md
    assert g["worse"]["slice"]["n"] == 7 and g["worse"]["slice_diff"]["mean"] < 0
    noted = markdown_report(meta, results, title="T", notes=["plain note", "- already a bullet"])
    assert "## Notes\n\n- plain note\n- already a bullet" in noted
    assert s["cost"]["worse"]["synthetic_fraction"] == 0.5
    m, lo, hi, n = mean_ci([1.0])
    assert m == 1.0 and n == 1 and lo != lo


def test_empty_recipe_leaves_the_batch_untouched():
    import torch

    from synthaug.integrations.nnunet.normalization import ChannelNormalization, intensity_for
    from synthaug.recipes.batch import BatchSynthesizer
    from synthaug.recipes.recipe import Recipe

    synth = BatchSynthesizer(Recipe.from_dict({"transforms": []}), intensity=intensity_for(ChannelNormalization("ZScoreNormalization")))
    data = torch.randn(2, 1, 8, 8)
    target = torch.randint(0, 3, (2, 1, 8, 8))
    out = synth(data, target)
    assert torch.equal(out.data, data) and torch.equal(out.target, target) and out.choice == [-1, -1]


@pytest.mark.slow
@pytest.mark.nnunet
def test_harness_end_to_end_on_a_tiny_dataset_then_resumes(tmp_path, tiny_weights, monkeypatch):
    pytest.importorskip("nnunetv2")
    monkeypatch.setenv("SYNTHAUG_WEIGHTS_PATH", str(tiny_weights))
    folder = make_raw_dataset(tmp_path / "raw", dataset_id=973, name="Harness", shape=(48, 48, 1))
    arms = [Arm("default", "off"), Arm("ctx", "context", {"transforms": [CONTEXT]}),
            Arm("exp", "expansion, trained with synthesis on top (stacked)", {"transforms": [CONTEXT]},
                expansion_recipe={"transforms": [CONTEXT]}, per_case=1)]
    work = tmp_path / "work"
    lines = []
    results = run_benchmark(folder, work, get_profile("smoke"), arms, log=lines.append)
    assert [r["arm"] for r in results] == ["default", "ctx", "exp"]
    for r in results:
        assert set(r["cases"]) == {"case_006", "case_007"} and len(r["slices"]["case_006"]) == 1
        assert r["slices"]["case_006"][0].keys() == r["cases"]["case_006"].keys()
        assert all(d is None or 0.0 <= d <= 1.0 for c in r["cases"].values() for d in c.values())
        assert r["train_seconds"] > 0 and r["peak_rss_mb"] > 0
    assert results[1]["synthaug_log"][0]["synthetic_fraction"] > 0
    assert results[0]["synthaug_log"][0]["synthetic_fraction"] == 0
    assert results[2]["train_dataset_id"] != 973  # the expanded dataset, trained with the arm's recipe on the fly
    assert results[2]["synthaug_log"][0]["synthetic_fraction"] > 0
    # a 1-seed profile cannot carry a headline claim: said at the start
    assert any("note: 1 seed(s) per arm: a headline claim needs 5" in x for x in lines)
    from synthaug.benchmark.provenance import current_commit

    commit = current_commit()
    for r in results:  # voxel counts beside every Dice, and the commit the run started from
        assert r["voxels"]["case_006"].keys() == r["cases"]["case_006"].keys()
        assert all(n_ref >= 0 and n_pred >= 0 for n_ref, n_pred in r["voxels"]["case_006"].values())
        assert (r["commit"] is None) if commit is None else r["commit"]["sha"] == commit.sha
    bench = json.loads((work / "benchmark.json").read_text())
    assert bench["labels"] == {"background": 0, "a": 1, "b": 2, "c": 3}
    assert bench["train_classes"] == bench["test_classes"] == ["a", "b", "c"]
    expanded = json.loads((work / "expanded" / "exp.json").read_text())
    assert (work / "raw" / expanded["folder"] / "imagesTr" / "case_000_synthaug0_0000.nii.gz").exists()
    # resumed: nothing reruns, results are the stored ones
    stamp = {p: p.stat().st_mtime_ns for p in work.rglob("result.json")}
    lines.clear()
    again = run_benchmark(folder, work, get_profile("smoke"), arms, log=lines.append)
    assert [r["cases"] for r in again] == [r["cases"] for r in results]
    assert sum("finished before, skipped" in x for x in lines) == 3
    assert {p: p.stat().st_mtime_ns for p in work.rglob("result.json")} == stamp
    # the report builder reads them back
    from synthaug.benchmark.report import write_report

    md = write_report(work, tmp_path / "out" / "report", title="tiny", command="c", machine="m", date="d").read_text()
    assert "| ctx |" in md and "vs default" in md and (tmp_path / "out" / "report_per_class.png").exists()
    meta, stored = load_results(work)
    assert len(stored) == 3 and meta["test_cases"] == ["case_006", "case_007"]
    assert os.path.islink(work / "raw" / folder.name)
    # the trained model segments new images; one given in another orientation comes back in its own grid
    import nibabel as nib

    from synthaug.benchmark.predict import predict

    given = nib.load(str(folder / "imagesTs" / "case_006_0000.nii.gz"))
    ras = np.asarray(given.dataobj, np.float32)
    (tmp_path / "new").mkdir()
    nib.save(nib.Nifti1Image(ras, given.affine), str(tmp_path / "new" / "ras.nii.gz"))
    lps_affine = given.affine @ np.diag([-1.0, -1.0, 1.0, 1.0])
    lps_affine[:2, 3] = given.affine[:2, :2] @ (np.array(ras.shape[:2]) - 1)  # same voxels in space, flipped axes
    nib.save(nib.Nifti1Image(ras[::-1, ::-1].copy(), lps_affine), str(tmp_path / "new" / "lps.nii.gz"))
    inputs = [tmp_path / "new" / "ras.nii.gz", tmp_path / "new" / "lps.nii.gz"]
    checks = predict(work, "default", 0, inputs, tmp_path / "pred", log=lines.append)
    assert [c.orientation for c in checks] == ["RAS", "LPS"] and "reoriented" in " ".join(checks[1].warnings)
    out_ras, out_lps = (nib.load(str(tmp_path / "pred" / n)) for n in ("ras.nii.gz", "lps.nii.gz"))
    np.testing.assert_allclose(out_lps.affine, lps_affine)
    seg_ras, seg_lps = np.asarray(out_ras.dataobj), np.asarray(out_lps.dataobj)
    assert seg_lps.shape == ras.shape and set(np.unique(seg_ras)) <= {0, 1, 2, 3}
    np.testing.assert_array_equal(seg_lps, seg_ras[::-1, ::-1])
    assert json.loads((tmp_path / "pred" / "lps_synthaug_check.json").read_text())["orientation"] == "LPS"
    with pytest.raises(DataError, match="never overwrites a prediction"):
        predict(work, "default", 0, inputs[:1], tmp_path / "pred", log=lines.append)
    # another seed only adds runs: the finished seed-0 runs stay
    lines.clear()
    more = get_profile("smoke").with_(seeds=(0, 1))
    run_benchmark(folder, work, more, arms[:1], log=lines.append)
    assert any("default seed 0: finished before, skipped" in x for x in lines)
    assert (work / "runs" / "default" / "seed1" / "result.json").exists()
    assert sum("nnUNetv2_train" in x for x in lines) == 1  # only seed 1 trained
    meta, stored = load_results(work)  # the arms of the first call stay recorded: their seed-0 runs still count
    assert [a["name"] for a in meta["arms"]] == ["default", "ctx", "exp"]
    assert [(r["arm"], r["seed"]) for r in stored] == [("default", 0), ("default", 1), ("ctx", 0), ("exp", 0)]
    # an arm refused while its expansion is prepared is not recorded: no phantom arm without runs in the report
    from synthaug.benchmark import downstream

    def refuse(arm, *args, **kwargs):
        raise DataError(f"arm {arm.name!r}: refused")

    monkeypatch.setattr(downstream, "_expand", refuse)
    refused = Arm("exp2", "refused expansion", expansion_recipe={"transforms": [CONTEXT]}, per_case=1)
    with pytest.raises(DataError, match="refused"):
        run_benchmark(folder, work, more, [arms[0], refused], log=lines.append)
    assert [a["name"] for a in json.loads((work / "benchmark.json").read_text())["arms"]] == ["default", "ctx", "exp"]


def test_translate_arm_when_training_and_test_modalities_differ():
    from types import SimpleNamespace

    from synthaug.benchmark.arms import dataset_modalities

    labels = {"background": 0, "liver": 1}
    cards = [SimpleNamespace(name="ctx", family="context", labels=("background", "liver"), source_modality="",
                             target_modality="", appearance_randomised=False),
             SimpleNamespace(name="ct2mr", family="translate", labels=(), source_modality="CT", target_modality="MR",
                             appearance_randomised=False)]
    cross = {"labels": labels, "synthaug": {"cases": [{"subject": "ct_a", "role": "train"},
                                                      {"subject": "mr_c", "role": "test"},
                                                      {"subject": "mr_c", "role": "report"}]}}
    assert dataset_modalities(cross) == ({"CT"}, {"MR"})
    arms = {a.name: a for a in builtin_arms(cross, cards=cards)}
    t = arms["translate"].recipe["transforms"][0]
    assert t["name"] == "modality_translate" and t["options"] == {"weights": "ct2mr", "source": "CT", "target": "MR"}
    assert {x["name"] for x in arms["combined"].recipe["transforms"]} == {
        "context_texture", "modality_translate", "gaussian_mixture"}
    same = {"labels": labels, "synthaug": {"cases": [{"subject": "ct_a", "role": "train"},
                                                     {"subject": "ct_b", "role": "test"}]}}
    assert "translate" not in {a.name for a in builtin_arms(same, cards=cards)}
    assert dataset_modalities({"labels": labels}) == (set(), set())


def test_unpaired_style_arm_uses_the_unlabelled_bank_and_paired_style_stays_in_one_modality(tmp_path):
    from types import SimpleNamespace

    labels = {"background": 0, "liver": 1}
    names = ("background", "liver")
    cards = [SimpleNamespace(name=n, family="style", labels=names, source_modality="CT", target_modality=t,
                             appearance_randomised=False) for n, t in (("usis", "MR"), ("paired", "CT"))]
    cross = {"labels": labels, "synthaug": {"cases": [{"subject": "ct_a", "role": "train"},
                                                      {"subject": "mr_c", "role": "test"}]}}
    arms = {a.name: a for a in builtin_arms(cross, cards=cards, style_bank="raw", unlabelled_bank="raw/imagesGen")}
    assert arms["style"].recipe["transforms"][0]["options"]["weights"] == "paired"
    u = arms["style_unpaired"].recipe["transforms"][0]
    assert u["name"] == "style_swap" and u["options"]["weights"] == "usis" and u["options"]["bank"] == "raw/imagesGen"
    assert "style_unpaired" not in {a.name for a in builtin_arms(cross, cards=cards, style_bank="raw")}
    same = {"labels": labels, "synthaug": {"cases": [{"subject": "ct_a", "role": "train"},
                                                     {"subject": "ct_b", "role": "test"}]}}
    assert "style_unpaired" not in {a.name for a in builtin_arms(same, cards=cards, unlabelled_bank="raw/imagesGen")}
    # the leakage check reads the bank folder's case ids and refuses one that overlaps a test case
    folder = make_raw_dataset(tmp_path / "raw", dataset_id=973, name="Bank", shape=(16, 16, 1))
    bank = tmp_path / "gen"
    bank.mkdir()
    (bank / "case_007_0000.nii.gz").write_bytes(b"")
    ds = open_dataset(folder)
    arm = Arm("style_unpaired", "", {"transforms": [{"name": "style_swap", "probability": 0.5,
                                                     "options": {"bank": str(bank)}}]})
    with pytest.raises(LeakageError, match="style bank"):
        check_leakage(ds, [Arm("default", ""), arm])
    (bank / "case_007_0000.nii.gz").rename(bank / "case_100_0000.nii.gz")
    assert check_leakage(ds, [Arm("default", ""), arm]) == {}


# ------------------------------------------------------------------------------------ bad input, resuming


def test_two_runs_exporting_one_scenario_at_once_share_the_finished_export(tmp_path, monkeypatch):
    """Two benchmark lanes started together on one work folder: the one whose export finds the other's finished
    folder in place reuses it instead of failing with "already exists"."""
    from synthaug.benchmark.downstream import prepare_scenario
    from synthaug.data import nnunet_export

    def raced(scenario, out, *, dataset_id):
        (out / f"Dataset{dataset_id:03d}_SynthAugInDomain").mkdir(parents=True)  # the other run finished first
        raise DataError("already exists; synthaug never overwrites a dataset")

    monkeypatch.setattr(nnunet_export, "export_nnunet", raced)
    logged = []
    assert prepare_scenario("in-domain", tmp_path / "raw", log=logged.append).name == "Dataset513_SynthAugInDomain"
    assert "exported meanwhile by another run" in logged[-1]

    def refused(scenario, out, *, dataset_id):
        raise DataError("dataset id taken")

    monkeypatch.setattr(nnunet_export, "export_nnunet", refused)
    with pytest.raises(DataError, match="dataset id taken"):  # nothing in place: the refusal stands
        prepare_scenario("in-domain", tmp_path / "other", log=logged.append)


def test_bad_test_sets_are_refused_at_the_start(tmp_path):
    folder = make_raw_dataset(tmp_path / "raw", dataset_id=974, name="Groups", shape=(16, 16, 1))
    meta = json.loads((folder / "dataset.json").read_text())
    # a test group of 0 volumes
    meta["synthaug"] = {"test_groups": {"a": ["case_006", "case_007"], "b": []}}
    (folder / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"test group\(s\) \['b'\] hold 0 volumes"):
        open_dataset(folder)
    # only report groups: no held-out test case
    meta["synthaug"] = {"test_groups": {"a": ["case_006", "case_007"]},
                        "cases": [{"id": c, "group": "a", "role": "report"} for c in ("case_006", "case_007")]}
    (folder / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="no held-out test case"):
        open_dataset(folder)


def test_train_and_test_labels_without_a_common_class_are_refused(tmp_path):
    import nibabel as nib
    import numpy as np

    from synthaug.benchmark.downstream import label_classes

    folder = make_raw_dataset(tmp_path / "raw", dataset_id=975, name="Disjoint", shape=(16, 16, 1))
    assert label_classes(open_dataset(folder)) == (["a", "b", "c"], ["a", "b", "c"])
    for case in ("case_006", "case_007"):  # test labels: class c only
        f = folder / "labelsTs" / f"{case}.nii.gz"
        img = nib.load(str(f))
        lab = np.asarray(img.dataobj)
        nib.save(nib.Nifti1Image(np.where(lab > 0, 3, 0).astype(np.uint8), img.affine), str(f))
    for f in (folder / "labelsTr").glob("*.nii.gz"):  # training labels: classes a and b only
        img = nib.load(str(f))
        lab = np.asarray(img.dataobj)
        nib.save(nib.Nifti1Image(np.where(lab == 3, 1, lab).astype(np.uint8), img.affine), str(f))
    with pytest.raises(DataError, match=r"classes \['a', 'b'\]\) and the test labels \(classes \['c'\]\) share no"):
        label_classes(open_dataset(folder))
    with pytest.raises(DataError, match="share no foreground class"):
        run_benchmark(folder, tmp_path / "work", get_profile("smoke"), [Arm("default", "")])
    assert not (tmp_path / "work").exists()  # refused before any work


def test_profile_round_trips_through_its_record():
    for p in PROFILES.values():
        assert Profile.from_dict(p.to_dict()) == p
    with pytest.raises(ValidationError, match="unknown field"):
        Profile.from_dict({**PROFILES["smoke"].to_dict(), "epochs": 3})
    with pytest.raises(ValidationError, match="seeds"):
        Profile.from_dict({**PROFILES["smoke"].to_dict(), "seeds": []})


def _stored_run(work, arm, seed, profile, dice, *, definition_seed=None, train=("c0",)):
    prof = {k: v for k, v in profile.to_dict().items() if k not in ("seeds", "parallel")}
    definition = {"arm": arm.fingerprint(), "seed": seed if definition_seed is None else definition_seed,
                  "profile": prof, "dataset": "Dataset999_X", "train": list(train), "test": ["t1"]}
    f = work / "runs" / arm.name / f"seed{seed}" / "result.json"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps({**_result(arm.name, seed, dice, dice), "definition": definition, "slices": {}}))


def test_load_results_takes_every_finished_seed_of_the_current_definition(tmp_path):
    profile = get_profile("smoke").with_(seeds=(0,))  # the last invocation ran seed 0 only
    arms = [Arm("default", "d"), Arm("ctx", "c", {"transforms": [CONTEXT]})]
    (tmp_path / "benchmark.json").write_text(json.dumps({
        "dataset": "Dataset999_X", "source": "/x", "profile": profile.to_dict(), "arms": [a.to_dict() for a in arms],
        "train_cases": ["c0"], "test_cases": ["t1"], "groups": {"test": ["t1"]}, "held_out_groups": ["test"]}))
    for s in range(5):
        _stored_run(tmp_path, arms[0], s, profile, 0.5 + 0.01 * s)
    _stored_run(tmp_path, arms[1], 0, profile, 0.6)
    _stored_run(tmp_path, arms[1], 1, profile.with_(num_epochs=7), 0.9)  # another budget: stale
    _stored_run(tmp_path, arms[1], 2, profile, 0.9, train=("c0", "c1"))  # another split: stale
    meta, results = load_results(tmp_path)
    assert [(r["arm"], r["seed"]) for r in results] == [("default", s) for s in range(5)] + [("ctx", 0)]
    assert meta["ignored_runs"] == ["ctx seed 1", "ctx seed 2"]
    md = markdown_report(meta, results, title="T")
    assert "| default | reference | 5 (5) |" in md
    assert "left out" in md and "ctx seed 1, ctx seed 2" in md


def test_more_seeds_resume_finished_runs(monkeypatch, tmp_path):
    """``--seeds 0 1 2 3 4`` keeps every per-run field of the profile, so a finished seed-0 run's stored
    definition still matches (it is skipped) and only seeds 1-4 are new runs."""
    from synthaug.benchmark import downstream
    from synthaug.cli.main import main

    captured = {}

    def fake_run(dataset, work, profile, arms, **kw):
        captured["profile"] = profile
        return []

    monkeypatch.setattr(downstream, "run_benchmark", fake_run)
    monkeypatch.setattr("synthaug.benchmark.report.write_report", lambda *a, **k: tmp_path / "r.md")
    folder = make_raw_dataset(tmp_path / "raw", dataset_id=976, name="Seeds", shape=(16, 16, 1))
    assert main(["benchmark", "downstream", "--dataset", str(folder), "--profile", "smoke", "--work",
                 str(tmp_path / "work"), "--arms", "default", "--seeds", "0", "1", "2", "3", "4"]) == 0
    five = captured["profile"]
    assert five.seeds == (0, 1, 2, 3, 4) and five.with_(seeds=(0,)) == get_profile("smoke")
    ds = open_dataset(folder)
    arm = Arm("default", "d")
    one = downstream._definition(arm, 0, get_profile("smoke"), ds)
    assert downstream._same_run(one, downstream._definition(arm, 0, five, ds))
    assert not downstream._same_run(one, downstream._definition(arm, 0, five.with_(num_epochs=2), ds))


def test_appearance_randomised_arms_follow_the_scenario_kind():
    """Issue 15: context_dr / expansion_dr exist when an appearance-randomised generator covers the labels; across
    modalities they draw randomised or physics-prior appearances without CT air, within CT randomised ones."""
    from synthaug.data.vocabulary import superclass_vocabulary
    from synthaug.weights.registry import list_weights

    labels = {n: i for i, n in enumerate(superclass_vocabulary().names)}
    ct_cases = [{"id": "ctA_z000-015", "subject": "ct_a", "role": "train"}]
    for test_subject, source, keep in (("ct_b", "randomised", True), ("mr_c", "mixed", False)):
        meta = {"labels": labels, "synthaug": {"cases": ct_cases + [{"id": "x_z000-009", "subject": test_subject,
                                                                        "role": "test"}]}}
        arms = {a.name: a for a in builtin_arms(meta, cards=list_weights())}
        (t,) = arms["context_dr"].recipe["transforms"]
        assert t["options"]["weights"] == "context_dr_ct_a" and t["options"]["features"] == "appearance"
        assert t["options"]["appearance_source"] == source and t["options"]["keep_outside_window"] is keep
        assert arms["expansion_dr"].is_expansion and not arms["expansion_dr"].recipe["transforms"]
        # stacked: the same expanded dataset, trained with the heavy_intensity arm's recipe on the fly
        stacked = arms["expansion_dr_heavy"]
        assert stacked.expansion_recipe == arms["expansion_dr"].expansion_recipe and stacked.per_case == 2
        assert stacked.recipe["transforms"] == arms["heavy_intensity"].recipe["transforms"]
        assert arm_kind(stacked.to_dict()) == "synthaug" and arm_kind(arms["heavy_intensity"].to_dict()) == "non-learned"
        assert arms["context"].recipe["transforms"][0]["options"]["weights"] == "context_ct_a"  # not the DR model
        if source == "mixed":  # the ablation arm differs from context_dr in the appearance source alone
            (r,) = arms["context_dr_randomised"].recipe["transforms"]
            assert r["options"] == {**t["options"], "appearance_source": "randomised"}
            assert {k: v for k, v in r.items() if k != "options"} == {k: v for k, v in t.items() if k != "options"}
        else:
            assert "context_dr_randomised" not in arms
        if keep:  # within CT: the contrast-phase arm differs from context_dr in the appearance source alone
            (c,) = arms["context_phase"].recipe["transforms"]
            assert c["options"] == {**t["options"], "appearance_source": "contrast_phase"}
        else:
            assert "context_phase" not in arms


def test_spine_cross_modality_gets_the_spine_dr_generator_with_randomised_appearances_only():
    """The spine vocabulary has no physics prior: its context_dr arm draws randomised appearances (CT -> MR)."""
    from synthaug.data.spine import spine_vocabulary
    from synthaug.weights.registry import list_weights

    labels = {n: i for i, n in enumerate(spine_vocabulary().names)}
    meta = {"labels": labels, "synthaug": {"cases": [{"id": "spineCt_z000-015", "subject": "spine_ct", "role": "train"},
                                                     {"id": "spineMr_z000-051", "subject": "spine_mr", "role": "test"}]}}
    arms = {a.name: a for a in builtin_arms(meta, cards=list_weights())}
    (t,) = arms["context_dr"].recipe["transforms"]
    assert t["options"]["weights"] == "context_dr_spine_ct" and t["options"]["appearance_source"] == "randomised"
    assert t["options"]["keep_outside_window"] is False
    assert "simulated_mr" not in arms and "context" not in arms  # no physics prior, no single-domain spine generator
    assert "context_dr_randomised" not in arms and "context_phase" not in arms  # randomised already; not CT


def test_generators_trained_at_another_spacing_are_not_offered():
    """The spine dataset is at 1.5 mm: the abdominal CT -> MR translator (3 mm) would refuse every training image,
    so neither ``translate`` nor the arms built on it (``combined``, ``expansion``) are offered there; at 3 mm it is."""
    from synthaug.data.spine import spine_vocabulary
    from synthaug.weights.registry import list_weights

    labels = {n: i for i, n in enumerate(spine_vocabulary().names)}
    meta = {"labels": labels, "synthaug": {"cases": [{"id": "spineCt_z000-015", "subject": "spine_ct", "role": "train"},
                                                     {"id": "spineMr_z000-051", "subject": "spine_mr", "role": "test"}]}}
    at = {mm: {a.name for a in builtin_arms(meta, cards=list_weights(), spacings=[(mm, mm, mm)] * 3)} for mm in (1.5, 3.0)}
    assert {"translate", "combined", "expansion"}.isdisjoint(at[1.5])
    assert {"context_dr", "expansion_dr"} <= at[1.5]  # the spine DR generator was trained at 1.5 mm
    assert "translate" in at[3.0] and "context_dr" not in at[3.0]


def test_the_oasis_family_dr_generator_is_the_generator_family_ablation_arm():
    """context_dr keeps the ConText P2PF generator; the shipped SPADE/OASIS-family one runs the same transform as
    context_dr_oasis (only the weights differ), within CT and across modalities."""
    from synthaug.data.vocabulary import superclass_vocabulary
    from synthaug.weights.registry import list_weights

    labels = {n: i for i, n in enumerate(superclass_vocabulary().names)}
    ct_cases = [{"id": "ctA_z000-015", "subject": "ct_a", "role": "train"}]
    for test_subject in ("ct_b", "mr_c"):
        meta = {"labels": labels, "synthaug": {"cases": ct_cases + [{"id": "x_z000-009", "subject": test_subject,
                                                                        "role": "test"}]}}
        arms = {a.name: a for a in builtin_arms(meta, cards=list_weights())}
        (t,) = arms["context_dr"].recipe["transforms"]
        (o,) = arms["context_dr_oasis"].recipe["transforms"]
        assert t["options"]["weights"] == "context_dr_ct_a"
        assert o["options"] == {**t["options"], "weights": "context_dr_oasis_ct_a"}
        assert {k: v for k, v in o.items() if k != "options"} == {k: v for k, v in t.items() if k != "options"}
