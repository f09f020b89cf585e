"""Restoring a work folder from a committed report: the stored runs count again (same definitions), paths
move with the work folder, and nothing already there is overwritten."""

import json

import pytest

from synthaug.benchmark.downstream import _NOT_PER_RUN, RESULT_FILE, arm_from_dict, load_results
from synthaug.benchmark.profiles import get_profile
from synthaug.benchmark.restore import restore_work
from synthaug.errors import DataError, ValidationError

OLD = "/old/runs/bench/cross-scanner"
SOURCE = f"{OLD}/source/Dataset999_X"
PROFILE = get_profile("smoke").to_dict()
ARMS = [{"name": "default", "description": "d", "recipe": {"transforms": []}},
        {"name": "style", "description": "s",
         "recipe": {"transforms": [{"name": "style_swap", "probability": 0.5, "bank": SOURCE}]}}]


def _report(tmp_path, arms=ARMS, fingerprint=None):
    per_run = {k: v for k, v in PROFILE.items() if k not in _NOT_PER_RUN}
    results = []
    for a in arms:
        for seed in (0, 1):
            definition = {"arm": fingerprint or arm_from_dict(a).fingerprint(), "seed": seed, "profile": per_run,
                          "dataset": "Dataset999_X", "train": ["c0", "c1"], "test": ["t0"]}
            results.append({"definition": definition, "arm": a["name"], "seed": seed, "commit": {"sha": "ab" * 20,
                            "dirty": False}, "cases": {"t0": {"liver": 0.5 + 0.1 * seed}}})
    meta = {"dataset": "Dataset999_X", "source": SOURCE, "profile": PROFILE, "arms": arms,
            "train_cases": ["c0", "c1"], "test_cases": ["t0"], "groups": {"g": ["t0"]}, "held_out_groups": ["g"],
            "ignored_runs": []}
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"benchmark": meta, "results": results}))
    return path


def test_restored_runs_count_again_with_paths_moved(tmp_path):
    report = _report(tmp_path)
    work = tmp_path / "work"
    done = restore_work(report, work, log=lambda m: None)
    assert done.moved and len(done.written) == 4 and not done.kept
    meta, results = load_results(work)
    assert meta["ignored_runs"] == [] and [(r["arm"], r["seed"]) for r in results] == [
        ("default", 0), ("default", 1), ("style", 0), ("style", 1)]
    style = next(a for a in meta["arms"] if a["name"] == "style")
    assert style["recipe"]["transforms"][0]["bank"] == f"{work.resolve()}/source/Dataset999_X"
    assert meta["source"] == f"{work.resolve()}/source/Dataset999_X"
    # the stored arm fingerprint follows the moved bank path; nothing else of a run changes
    assert results[2]["definition"]["arm"] == arm_from_dict(style).fingerprint() != arm_from_dict(ARMS[1]).fingerprint()
    assert results[3]["cases"] == {"t0": {"liver": 0.6}} and results[3]["commit"]["sha"] == "ab" * 20
    assert json.loads((work / "runs" / "style" / "seed1" / "commit.json").read_text())["sha"] == "ab" * 20


def test_restoring_twice_keeps_and_never_overwrites(tmp_path):
    report = _report(tmp_path)
    work = tmp_path / "work"
    restore_work(report, work, log=lambda m: None)
    again = restore_work(report, work, log=lambda m: None)
    assert not again.written and len(again.kept) == 4
    f = work / "runs" / "default" / "seed0" / RESULT_FILE
    other = json.loads(f.read_text())
    other["cases"] = {"t0": {"liver": 0.9}}
    f.write_text(json.dumps(other))
    (work / "runs" / "style" / "seed1" / RESULT_FILE).unlink()
    with pytest.raises(ValidationError, match="holds another run of default seed 0 than the report; nothing was"):
        restore_work(report, work, log=lambda m: None)
    assert not (work / "runs" / "style" / "seed1" / RESULT_FILE).exists()  # refused before writing anything
    assert json.loads(f.read_text())["cases"] == {"t0": {"liver": 0.9}}


def test_restore_refusals(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "benchmark.json").write_text(json.dumps({"dataset": "Dataset998_Y", "train_cases": [], "test_cases": []}))
    with pytest.raises(ValidationError, match="holds a benchmark of Dataset998_Y with another split"):
        restore_work(_report(tmp_path), work, log=lambda m: None)
    with pytest.raises(DataError, match="another definition of arm 'default' than the report lists"):
        restore_work(_report(tmp_path, fingerprint="0" * 16), tmp_path / "w2", log=lambda m: None)
    unfinished = tmp_path / "w3" / "runs" / "default" / "seed1"
    unfinished.mkdir(parents=True)
    (unfinished / "train.log").write_text("")
    with pytest.raises(ValidationError, match="holds an unfinished run"):
        restore_work(_report(tmp_path), tmp_path / "w3", log=lambda m: None)
    with pytest.raises(DataError, match="not a downstream report JSON"):
        (tmp_path / "bad.json").write_text("{}")
        restore_work(tmp_path / "bad.json", tmp_path / "w4", log=lambda m: None)


def test_restore_in_place_keeps_fingerprints(tmp_path):
    report = _report(tmp_path)
    payload = json.loads(report.read_text())
    payload["benchmark"]["source"] = str(tmp_path / "work" / "source" / "Dataset999_X")
    report.write_text(json.dumps(payload))
    done = restore_work(report, tmp_path / "work", log=lambda m: None)
    assert not done.moved
    _, results = load_results(tmp_path / "work")
    assert results[2]["definition"]["arm"] == arm_from_dict(ARMS[1]).fingerprint()
