"""Reproduction check: the comparison with the report's run-to-run spread (pure), the refusals before any
work, and the output path. The end-to-end rerun with nnU-Net is in tests/cli/test_cli_benchmark.py."""

import json
import math

import pytest

from synthaug.benchmark.profiles import get_profile
from synthaug.benchmark.reproduce import (
    GroupCheck,
    _remap,
    compare,
    output_path,
    reproduce,
    reproduction_markdown,
)
from synthaug.errors import DataError, ValidationError

T_975_2 = 4.302652729911275


def _run(arm, seed, t1, t2):
    return {"arm": arm, "seed": seed, "cases": {"t1": {"a": t1, "b": None}, "t2": {"a": t2, "b": t2}}}


META = {"dataset": "Dataset999_X", "source": "/nonexistent/Dataset999_X", "profile": get_profile("smoke").to_dict(),
        "arms": [{"name": "default", "description": "", "recipe": {"transforms": []}},
                 {"name": "ctx", "description": "", "recipe": {"transforms": []}}],
        "train_cases": ["c0"], "test_cases": ["t1", "t2"], "groups": {"g": ["t1", "t2"], "only_t1": ["t1"]},
        "held_out_groups": ["g"]}
# per-seed means of ctx over g: 0.50, 0.52, 0.54 (SD 0.02 over 3 seeds)
RESULTS = [_run("ctx", 0, 0.49, 0.51), _run("ctx", 1, 0.50, 0.54), _run("ctx", 2, 0.53, 0.55),
           _run("default", 0, 0.4, 0.4)]


def test_compare_uses_the_reports_seed_spread():
    bound = math.sqrt(2) * T_975_2 * 0.02  # 0.1217
    (g, only) = compare(META, RESULTS, _run("ctx", 1, 0.58, 0.62), arm="ctx", seed=1)
    assert g.group == "g" and g.held_out and g.n_seeds == 3
    assert g.stored == pytest.approx(0.52) and g.rerun == pytest.approx(0.60) and g.difference == pytest.approx(0.08)
    assert g.sd == pytest.approx(0.02) and g.bound == pytest.approx(bound) and g.within is True
    assert g.cases["t1"] == {"stored": 0.50, "rerun": 0.58}
    assert only.group == "only_t1" and not only.held_out and only.stored == pytest.approx(0.50)
    (g, _) = compare(META, RESULTS, _run("ctx", 1, 0.70, 0.70), arm="ctx", seed=1)
    assert g.within is False and g.verdict() == "OUTSIDE the run-to-run spread"
    # one seed in the report: the spread is unknown, said so
    (g, _) = compare(META, RESULTS, _run("default", 0, 0.4, 0.4), arm="default", seed=0)
    assert g.within is None and "spread unknown" in g.verdict()
    with pytest.raises(ValidationError, match=r"seeds for 'ctx': \[0, 1, 2\]"):
        compare(META, RESULTS, _run("ctx", 5, 0.5, 0.5), arm="ctx", seed=5)


def test_reproduction_markdown_states_both_values_and_the_rule():
    checks = compare(META, RESULTS, _run("ctx", 1, 0.58, 0.62), arm="ctx", seed=1)
    from dataclasses import asdict

    record = {"report": "r.json", "arm": "ctx", "seed": 1, "work": "/w", "profile": {"name": "smoke"},
              "paths_moved": True, "checks": [asdict(c) for c in checks]}
    md = reproduction_markdown(record, command="synthaug benchmark reproduce r.json --arm ctx --seed 1",
                               machine="m", date="d", commit="abc1234")
    assert "| g | 52.0 | 60.0 | +8.0 | 2.0 (3) | 12.2 | within the run-to-run spread |" in md
    assert "Commit: abc1234" in md and "sqrt(2) x t(0.975, n-1) x SD" in md and "| t1 | 50.0 | 58.0 |" in md
    assert "paths moved to the fresh copy" in md
    assert isinstance(GroupCheck(**record["checks"][0]), GroupCheck)


def test_reproduce_refuses_before_any_work(tmp_path):
    report = tmp_path / "rep.json"
    report.write_text(json.dumps({"benchmark": META, "results": RESULTS}))
    with pytest.raises(ValidationError, match=r"no arm 'ctz'; its arms: \['ctx', 'default'\]"):
        reproduce(report, arm="ctz", seed=0)
    with pytest.raises(ValidationError, match=r"no run of arm 'ctx' with seed 9"):
        reproduce(report, arm="ctx", seed=9)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("")
    with pytest.raises(ValidationError, match="not empty; a reproduction starts from a fresh work folder"):
        reproduce(report, arm="ctx", seed=0, work=busy)
    with pytest.raises(ValidationError, match="is a file, not a folder"):
        reproduce(report, arm="ctx", seed=0, work=busy / "x")
    with pytest.raises(DataError, match="does not exist here; pass the nnU-Net raw dataset with --dataset"):
        reproduce(report, arm="ctx", seed=0, work=tmp_path / "fresh")
    with pytest.raises(DataError, match="not a downstream report"):
        (tmp_path / "bad.json").write_text("{}")
        reproduce(tmp_path / "bad.json", arm="ctx", seed=0)


def test_paths_under_the_old_dataset_move_to_the_fresh_copy_and_outputs_sit_beside_the_report(tmp_path):
    recipe = {"transforms": [{"options": {"bank": "/old/src/Dataset1_X/imagesGen", "weights": "w"}},
                             {"options": {"bank": "/old/src/Dataset1_XY"}}]}
    moved = _remap(recipe, "/old/src/Dataset1_X", "/new/Dataset1_X")
    assert moved["transforms"][0]["options"] == {"bank": "/new/Dataset1_X/imagesGen", "weights": "w"}
    assert moved["transforms"][1]["options"]["bank"] == "/old/src/Dataset1_XY"  # another folder: untouched
    assert output_path(tmp_path / "downstream_in-domain.json", "default", 0) == \
        tmp_path / "downstream_in-domain_reproduce_default_seed0"
