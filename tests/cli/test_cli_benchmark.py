"""``synthaug benchmark report`` options and ``synthaug benchmark reproduce`` end to end (smoke profile,
real nnU-Net on CPU, tiny dataset)."""

import dataclasses
import json
import shutil
import sys

import pytest

from synthaug.benchmark.arms import Arm
from synthaug.benchmark.profiles import get_profile
from synthaug.cli.main import main
from tests.integrations.nnunet import make_raw_dataset


def _fake_work(tmp_path):
    """A work folder with stored results only (5 seeds of default and ctx), as the harness writes them."""
    profile = get_profile("smoke")
    arms = [Arm("default", "d"), Arm("ctx", "c", {"transforms": [{"name": "gaussian_mixture", "probability": 1.0}]})]
    work = tmp_path / "work"
    meta = {"dataset": "Dataset999_X", "source": str(tmp_path / "src"), "profile": profile.to_dict(),
            "arms": [a.to_dict() for a in arms], "train_cases": ["c0"], "test_cases": ["t1"],
            "groups": {"test": ["t1"]}, "held_out_groups": ["test"], "labels": {"background": 0, "a": 1, "b": 2}}
    work.mkdir()
    (work / "benchmark.json").write_text(json.dumps(meta))
    prof = {k: v for k, v in profile.to_dict().items() if k not in ("seeds", "parallel")}
    for arm in arms:
        for s in range(5):
            d = 0.5 + 0.01 * s + (0.05 if arm.name == "ctx" else 0.0)
            r = {"arm": arm.name, "seed": s, "cases": {"t1": {"a": d, "b": 0.0}}, "slices": {}, "train_seconds": 1.0,
                 "predict_seconds": 1.0, "peak_rss_mb": 1.0, "synthaug_log": [],
                 "definition": {"arm": arm.fingerprint(), "seed": s, "profile": prof, "dataset": "Dataset999_X",
                                "train": ["c0"], "test": ["t1"]}}
            f = work / "runs" / arm.name / f"seed{s}" / "result.json"
            f.parent.mkdir(parents=True)
            f.write_text(json.dumps(r))
    return work


def _ceiling(tmp_path):
    """A label-noise ceiling file of the shape `synthaug data label-ceiling` writes (test group: 90.0 mean)."""
    ceiling = tmp_path / "ceiling.json"
    ceiling.write_text(json.dumps({"test": {"mean": 0.9, "per_class": {"a": 0.95, "b": 0.85}}}))
    return ceiling


def test_report_options(tmp_path, capsys):
    work = _fake_work(tmp_path)
    ceiling = _ceiling(tmp_path)
    out = tmp_path / "out" / "rep"
    assert main(["benchmark", "report", "--work", str(work), "--out", str(out), "--headline-class", "a",
                 "--learned-classes", "--no-harm-margin", "0.5", "--ceiling", str(ceiling),
                 "--predates", "HEAD:the current behaviour"]) == 0
    md = (tmp_path / "out" / "rep.md").read_text()
    assert "| ctx | non-learned, best | 5 (5) | 28.5 | +2.5 |" in md and "| gain |" in md
    assert "### Headline class `a`" in md and "### Over the classes default learned here (1: a;" in md
    assert "-0.5 point(s) (the no-harm margin)" in md
    assert "| label-noise ceiling | TotalSegmentator 2.10 vs 2.18 | — | 90.0 |" in md
    assert "- default: b" in md  # never predicted
    assert "commit unknown (10 runs" in md and "include HEAD (the current behaviour) is unknown" in md
    payload = json.loads((tmp_path / "out" / "rep.json").read_text())
    assert payload["options"]["headline_classes"] == ["a"] and payload["options"]["ceiling"]["test"]["mean"] == 0.9
    assert payload["summary"]["groups"]["test"]["seed_level"]["arms"]["ctx"]["claim"]["word"] == "gain"
    assert "provenance" in payload and "commit" in payload
    assert payload["title"].startswith("Downstream nnU-Net benchmark") and payload["notes"] == []
    assert payload["options"]["predates"] == ["HEAD:the current behaviour"]
    assert payload["options"]["ceiling_file"] == str(ceiling) and payload["options"]["in_domain_file"] is None
    # bad options: clear errors, exit code 2
    capsys.readouterr()
    assert main(["benchmark", "report", "--work", str(work), "--out", str(out), "--predates", "HEAD"]) == 2
    assert "COMMIT:TEXT" in capsys.readouterr().err
    assert main(["benchmark", "report", "--work", str(work), "--out", str(out), "--headline-class", "aa"]) == 2
    assert "Did you mean 'a'" in capsys.readouterr().err
    assert main(["benchmark", "report", "--work", str(work), "--out", str(out), "--predates", "nosuchrev:x"]) == 2
    assert "not in the repository" in capsys.readouterr().err


def test_restore_then_report_gives_the_same_summary(tmp_path, capsys):
    work = _fake_work(tmp_path)
    out = tmp_path / "out" / "rep"
    assert main(["benchmark", "report", "--work", str(work), "--out", str(out)]) == 0
    fresh = tmp_path / "fresh"
    assert main(["benchmark", "restore", str(out.with_suffix(".json")), "--work", str(fresh)]) == 0
    assert "10 run(s) written, 0 already there" in capsys.readouterr().out
    assert main(["benchmark", "report", "--work", str(fresh), "--out", str(tmp_path / "out" / "again")]) == 0
    first, again = (json.loads((tmp_path / "out" / f"{n}.json").read_text()) for n in ("rep", "again"))
    assert again["summary"] == first["summary"] and len(again["results"]) == 10
    # restoring over a work folder that holds other runs is refused, exit code 2
    assert main(["benchmark", "restore", str(out.with_suffix(".json")), "--work", str(fresh)]) == 0
    r = fresh / "runs" / "ctx" / "seed4" / "result.json"
    r.write_text(json.dumps({**json.loads(r.read_text()), "cases": {"t1": {"a": 0.0, "b": 0.0}}}))
    capsys.readouterr()
    assert main(["benchmark", "restore", str(out.with_suffix(".json")), "--work", str(fresh)]) == 2
    assert "holds another run of ctx seed 4" in capsys.readouterr().err


def test_report_like_rebuilds_a_committed_report_with_its_settings(tmp_path, capsys):
    work = _fake_work(tmp_path)
    ceiling = _ceiling(tmp_path)
    out = tmp_path / "results" / "rep"
    assert main(["benchmark", "report", "--work", str(work), "--out", str(out), "--title", "My report",
                 "--command", "synthaug benchmark downstream --seeds 0 1 2 3 4", "--note", "first note",
                 "--headline-class", "a", "--no-harm-margin", "0.5", "--ceiling", str(ceiling)]) == 0
    first = json.loads(out.with_suffix(".json").read_text())
    fresh = tmp_path / "fresh"
    assert main(["benchmark", "restore", str(out.with_suffix(".json")), "--work", str(fresh)]) == 0
    # one more seed of each arm, then the committed report rebuilt in place with its own settings
    for arm in ("default", "ctx"):
        r = json.loads((fresh / "runs" / arm / "seed4" / "result.json").read_text())
        r = {**r, "seed": 5, "definition": {**r["definition"], "seed": 5}}
        (fresh / "runs" / arm / "seed5").mkdir()
        (fresh / "runs" / arm / "seed5" / "result.json").write_text(json.dumps(r))
    assert main(["benchmark", "report", "--work", str(fresh), "--like", str(out.with_suffix(".json")),
                 "--command", "the same with --seeds 5", "--note", "second note"]) == 0
    again = json.loads(out.with_suffix(".json").read_text())
    assert again["title"] == "My report" and again["notes"] == ["first note", "second note"]
    assert again["command"] == "synthaug benchmark downstream --seeds 0 1 2 3 4, then the same with --seeds 5"
    assert again["options"] == first["options"] and len(again["results"]) == 12
    md = out.with_suffix(".md").read_text()
    assert md.startswith("# My report") and "- second note" in md and "-0.5 point(s) (the no-harm margin)" in md
    assert "### Headline class `a`" in md and "| ctx | non-learned, best | 6 (5) |" in md
    # an option given on the command line replaces the stored one
    assert main(["benchmark", "report", "--work", str(fresh), "--like", str(out.with_suffix(".json")),
                 "--out", str(tmp_path / "other"), "--no-harm-margin", "2"]) == 0
    assert json.loads((tmp_path / "other.json").read_text())["options"]["rule"]["no_harm_margin"] == 0.02
    # a report whose JSON predates recorded settings, or no --out/--like at all: clear errors
    old = tmp_path / "old.json"
    old.write_text(json.dumps({k: v for k, v in first.items() if k not in ("title", "notes")}))
    capsys.readouterr()
    assert main(["benchmark", "report", "--work", str(fresh), "--like", str(old)]) == 2
    assert "predates reports that record their title, notes and options" in capsys.readouterr().err
    assert main(["benchmark", "report", "--work", str(fresh)]) == 2
    assert "needs --out" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.nnunet
def test_reproduce_reruns_one_arm_and_seed_from_a_fresh_work_folder(tmp_path, capsys, monkeypatch):
    pytest.importorskip("nnunetv2")
    from synthaug.benchmark.downstream import run_benchmark

    folder = make_raw_dataset(tmp_path / "raw", dataset_id=977, name="Repro", shape=(48, 48, 1))
    work = tmp_path / "work"
    run_benchmark(folder, work, get_profile("smoke"), [Arm("default", "off")], log=lambda m: None)
    # a second stored seed (copied from seed 0 with other Dice) so the report states a run-to-run spread
    first = json.loads((work / "runs" / "default" / "seed0" / "result.json").read_text())
    second = {**first, "seed": 1, "definition": {**first["definition"], "seed": 1},
              "cases": {c: {k: None if d is None else max(0.0, d - 0.05) for k, d in pc.items()}
                        for c, pc in first["cases"].items()}}
    (work / "runs" / "default" / "seed1").mkdir()
    (work / "runs" / "default" / "seed1" / "result.json").write_text(json.dumps(second))
    report = tmp_path / "results" / "downstream_tiny"
    assert main(["benchmark", "report", "--work", str(work), "--out", str(report)]) == 0
    assert "| default | 2 | 0: " in (tmp_path / "results" / "downstream_tiny.md").read_text()  # spread table
    shutil.rmtree(work / "preprocessed")  # the rerun must not need the original work folder
    capsys.readouterr()
    fresh = tmp_path / "fresh"
    argv = ["benchmark", "reproduce", str(report.with_suffix(".json")), "--arm", "default", "--seed", "0",
            "--work", str(fresh)]
    monkeypatch.setattr(sys, "argv", ["synthaug", *argv])  # the command line the outputs quote
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "# Reproduction check: arm `default`, seed 0" in printed and "| test |" in printed
    md = (tmp_path / "results" / "downstream_tiny_reproduce_default_seed0.md").read_text()
    out = json.loads((tmp_path / "results" / "downstream_tiny_reproduce_default_seed0.json").read_text())
    assert out["command"] == "synthaug " + " ".join(argv) and out["machine"] and out["date"]
    assert "commit" in out and "Commit: " in md
    (check,) = out["checks"]
    assert check["group"] == "test" and check["n_seeds"] == 2 and check["bound"] > 0
    assert 0.0 <= check["rerun"] <= 1.0 and check["difference"] == pytest.approx(check["rerun"] - check["stored"])
    assert check["within"] == (abs(check["difference"]) <= check["bound"])
    assert set(check["cases"]) == {"case_006", "case_007"}
    assert (fresh / "preprocessed").is_dir() and (fresh / "runs" / "default" / "seed0" / "result.json").exists()
    assert out["rerun"]["seed"] == 0 and out["rerun"]["definition"] == first["definition"]


def test_tune_refuses_an_arm_without_on_the_fly_synthesis_before_any_work(tmp_path, capsys):
    from synthaug.cli.main import main
    from tests.integrations.nnunet import make_raw_dataset

    folder = make_raw_dataset(tmp_path / "raw", dataset_id=975, name="TuneCli", shape=(24, 24, 1))
    code = main(["benchmark", "tune", "--dataset", str(folder), "--arm", "default", "--work", str(tmp_path / "w"),
                 "--profile", "smoke"])
    assert code != 0 and "no mixing policy to tune" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
    code = main(["benchmark", "tune", "--dataset", str(folder), "--arm", "synthseg", "--work", str(tmp_path / "w"),
                 "--profile", "smoke", "--policies", "0.5", "1:ramp"])
    assert code != 0 and ">= 2 epochs" in capsys.readouterr().err and not (tmp_path / "w").exists()


def test_tune_out_writes_the_search_beside_its_command(tmp_path, capsys, monkeypatch):
    import synthaug.benchmark.tuning as tuning
    from tests.benchmark.test_tuning import _result
    from tests.integrations.nnunet import make_raw_dataset

    folder = make_raw_dataset(tmp_path / "raw", dataset_id=976, name="TuneOut", shape=(24, 24, 1))
    seen = {}

    def fake_search(dataset, work, profile, arm, **kwargs):  # the search itself is tested in test_tuning.py
        seen.update(arm=arm.name, parallel=profile.parallel, policies=kwargs["policies"])
        return _result([0.5, 0.7, 0.6, 0.1])

    monkeypatch.setattr(tuning, "tune_mixing", fake_search)
    out = tmp_path / "results" / "tuning_x"
    argv = ["benchmark", "tune", "--dataset", str(folder), "--arm", "synthseg", "--work", str(tmp_path / "w"),
            "--profile", "cpu-long", "--parallel", "2", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["synthaug", *argv])
    assert main(argv) == 0
    assert seen == {"arm": "synthseg", "parallel": 2, "policies": tuning.DEFAULT_POLICIES}
    assert "chosen: p0.50" in capsys.readouterr().out
    md = (tmp_path / "results" / "tuning_x.md").read_text()
    payload = json.loads((tmp_path / "results" / "tuning_x.json").read_text())
    assert "| p0.50 | 70.0 |" in md and f"`synthaug {' '.join(argv)}`" in md
    assert payload["command"] == "synthaug " + " ".join(argv) and payload["chosen"] == {"probability": 0.5,
                                                                                          "ramp": False}
    assert payload["scenario"] == folder.name and payload["candidates"][1]["dice"] == 0.7


def test_downstream_tuned_adds_the_searched_arm_and_refuses_another_scenarios_search(tmp_path, capsys, monkeypatch):
    import synthaug.benchmark.downstream as downstream
    from tests.benchmark.test_tuning import _result

    folder = make_raw_dataset(tmp_path / "raw", dataset_id=977, name="TunedArm", shape=(24, 24, 1))
    search = tmp_path / "tuning_x.json"
    result = dataclasses.replace(_result([0.9, 0.7, 0.6, 0.1]), arm="synthseg", validation_cases=("case_000",))
    search.write_text(json.dumps({"scenario": folder.name, **result.to_dict()}))
    seen = {}

    def fake_run(dataset, work, profile, arms, **kwargs):  # the runs themselves are tested in test_downstream.py
        seen["arms"] = arms
        raise SystemExit(0)

    monkeypatch.setattr(downstream, "run_benchmark", fake_run)
    argv = ["benchmark", "downstream", "--dataset", str(folder), "--work", str(tmp_path / "w"), "--profile", "smoke",
            "--arms", "default,synthseg", "--tuned", str(search)]
    with pytest.raises(SystemExit):
        main(argv)
    names = [a.name for a in seen["arms"]]
    assert names == ["default", "synthseg", "synthseg_tuned"]
    probs = [t["probability"] for t in seen["arms"][2].recipe["transforms"]]
    assert sum(probs) == pytest.approx(0.25) and "mixing p0.25" in seen["arms"][2].description
    other = tmp_path / "tuning_other.json"
    other.write_text(json.dumps({"scenario": "in-domain", **result.to_dict()}))
    code = main([*argv[:-1], str(other)])
    assert code != 0 and "searched on scenario 'in-domain'" in capsys.readouterr().err


@pytest.mark.parametrize("command", [
    ["downstream", "--scenario", "in-domain", "--profile", "smoke", "--arms", "default"],
    ["tune", "--scenario", "in-domain", "--arm", "context_phase", "--profile", "smoke"],
    ["report", "--out", "x"],
    ["restore", "benchmarks/results/downstream_in-domain.json"],
    ["reproduce", "benchmarks/results/downstream_in-domain.json", "--arm", "default", "--seed", "0"],
])
def test_a_work_folder_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, command):
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("x")
    with pytest.raises(SystemExit) as exc:
        main(["benchmark", *command, "--work", str(not_a_folder)])
    assert exc.value.code == 2
    assert f"--work {not_a_folder} is a file, not a folder; give a folder path" in capsys.readouterr().err
    assert not_a_folder.read_text() == "x"


def test_restore_into_a_file_is_refused_by_the_library_too(tmp_path):
    from synthaug.benchmark.restore import restore_work
    from synthaug.errors import ValidationError

    work = _fake_work(tmp_path)
    assert main(["benchmark", "report", "--work", str(work), "--out", str(tmp_path / "rep")]) == 0
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValidationError, match="is a file, not a folder"):
        restore_work(tmp_path / "rep.json", tmp_path / "file")
