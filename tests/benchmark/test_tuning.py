"""Mixing-policy search: policies rescale an arm, the choice rule, the record, leakage, and a tiny real search."""

import json

import pytest

from synthaug.benchmark.arms import Arm
from synthaug.benchmark.profiles import get_profile
from synthaug.benchmark.tuning import (
    DEFAULT_POLICIES,
    CandidateScore,
    MixingPolicy,
    MixingSearchResult,
    _validation_cases,
    _write_split,
    apply_policy,
    apply_tuning,
    read_search,
    tune_mixing,
    tuned_arm,
    tuning_file,
    tuning_markdown,
)
from synthaug.errors import DataError, LeakageError, ValidationError
from tests.benchmark.test_downstream import CONTEXT
from tests.integrations.nnunet import make_raw_dataset

GMM = {"name": "gaussian_mixture", "probability": 0.1}


def _arm():
    return Arm("mix", "context + mixture", {"transforms": [{**CONTEXT, "probability": 0.3}, GMM]})


def test_a_policy_rescales_the_arm_keeping_ratios_and_ramps_over_half_the_epochs():
    arm = _arm()
    half = apply_policy(arm, MixingPolicy(0.8), num_epochs=40)
    probs = [t["probability"] for t in half.recipe["transforms"]]
    assert probs == pytest.approx([0.6, 0.2]) and "schedule" not in half.recipe
    assert half.recipe["transforms"][0]["options"] == CONTEXT["options"]  # only the probability changes
    ramped = apply_policy(arm, MixingPolicy(1.0, ramp=True), num_epochs=40)
    assert ramped.recipe["schedule"] == {"warmup_epochs": 0, "ramp_epochs": 20, "start": 0.0}
    assert len({arm.fingerprint(), half.fingerprint(), ramped.fingerprint()}) == 3  # a changed policy reruns
    assert "mixing p1.00-ramp" in ramped.description
    with pytest.raises(ValidationError, match="no mixing policy to tune"):
        apply_policy(Arm("default", "off"), MixingPolicy(0.5), num_epochs=40)
    with pytest.raises(ValidationError, match="no mixing policy to tune"):
        apply_policy(Arm("exp", "x", expansion_recipe={"transforms": [CONTEXT]}), MixingPolicy(0.5), num_epochs=4)
    with pytest.raises(ValidationError, match=">= 2 epochs"):
        apply_policy(arm, MixingPolicy(1.0, ramp=True), num_epochs=1)


def test_policies_parse_and_refuse_what_is_not_a_probability():
    assert MixingPolicy.parse("0.5") == MixingPolicy(0.5)
    assert MixingPolicy.parse("1:ramp") == MixingPolicy(1.0, ramp=True)
    assert [p.name for p in DEFAULT_POLICIES] == ["p0.25", "p0.50", "p1.00", "p1.00-ramp"]
    for bad in ("0", "1.5", "abc", "0.5:slow"):
        with pytest.raises(ValidationError):
            MixingPolicy.parse(bad)


def _result(dices):
    return MixingSearchResult(
        "mix", "smoke", 0, 0, ("case_001",),
        tuple(CandidateScore(p, d, {"a": d}, 1.0) for p, d in zip(DEFAULT_POLICIES, dices)), "abc", "machine")


def test_the_best_validation_dice_wins_and_ties_go_to_less_synthesis():
    assert _result([0.5, 0.7, 0.6, 0.1]).chosen == MixingPolicy(0.5)
    assert _result([0.6, 0.6, 0.6, 0.6]).chosen == MixingPolicy(0.25)
    r = _result([0.1, 0.2, 0.3, 0.3])
    assert r.chosen == MixingPolicy(1.0)  # no ramp before ramp
    again = MixingSearchResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again == r and r.to_dict()["chosen"] == {"probability": 1.0, "ramp": False}


def test_the_search_markdown_lists_every_candidate_and_marks_the_choice():
    md = tuning_markdown(_result([0.5, 0.7, 0.6, 0.1]), scenario="in-domain", command="synthaug benchmark tune x",
                         date="2026-12-04")
    rows = [line for line in md.splitlines() if line.startswith("| p") and not line.startswith("| policy")]
    assert [r.split(" | ")[0] for r in rows] == ["| p0.25", "| p0.50", "| p1.00", "| p1.00-ramp"]
    assert rows[1].startswith("| p0.50 | 70.0 |") and rows[1].endswith("| chosen |")
    assert sum(r.endswith("| chosen |") for r in rows) == 1
    assert "No test case is read" in md and "`synthaug benchmark tune x`" in md and "a choice, not a claim" in md


def test_apply_tuning_gives_only_the_tuned_arm_its_chosen_policy(tmp_path):
    arms = [Arm("default", "off"), _arm()]
    assert apply_tuning(arms, tmp_path, num_epochs=4, log=lambda m: None) == arms  # nothing recorded: unchanged
    f = tuning_file(tmp_path, "mix")
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps(_result([0.1, 0.9, 0.2, 0.3]).to_dict()))
    lines = []
    tuned = apply_tuning(arms, tmp_path, num_epochs=4, log=lines.append)
    assert tuned[0] == arms[0]
    assert sum(t["probability"] for t in tuned[1].recipe["transforms"]) == pytest.approx(0.5)
    assert any("mixing policy p0.50" in x for x in lines)


def test_a_split_holding_a_test_case_is_refused(tmp_path):
    (tmp_path / "splits_final.json").write_text(json.dumps([{"train": ["a", "b"], "val": ["t1"]}]))
    with pytest.raises(LeakageError, match=r"test case\(s\) \['t1'\]"):
        _validation_cases(tmp_path, 0, ["t1"])
    assert _validation_cases(tmp_path, 0, ["t9"]) == ("t1",)
    with pytest.raises(ValidationError, match="fold 3 does not exist"):
        _validation_cases(tmp_path, 3, [])


def test_the_split_is_nnunets_own_and_an_existing_one_is_kept(tmp_path):
    pytest.importorskip("nnunetv2")
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    ids = [f"case_{i:03d}" for i in (3, 0, 5, 1, 4, 2)]
    _write_split(tmp_path, ids)
    written = json.loads((tmp_path / "splits_final.json").read_text())
    assert written == json.loads(json.dumps(generate_crossval_split(sorted(ids), seed=12345, n_splits=5)))
    assert sorted(sum((f["val"] for f in written), [])) == sorted(ids)  # every case validates exactly once
    (tmp_path / "splits_final.json").write_text(json.dumps([{"train": ["a"], "val": ["b"]}]))
    _write_split(tmp_path, ids)
    assert _validation_cases(tmp_path, 0, []) == ("b",)


@pytest.mark.slow
@pytest.mark.nnunet
def test_a_tiny_search_trains_each_policy_on_a_training_fold_and_resumes(tmp_path, tiny_weights, monkeypatch):
    pytest.importorskip("nnunetv2")
    monkeypatch.setenv("SYNTHAUG_WEIGHTS_PATH", str(tiny_weights))
    folder = make_raw_dataset(tmp_path / "raw", dataset_id=974, name="Tune", shape=(48, 48, 1))
    arm = Arm("ctx", "context", {"transforms": [CONTEXT]})
    policies = (MixingPolicy(0.25), MixingPolicy(1.0))
    work = tmp_path / "work"
    lines = []
    two_at_a_time = get_profile("smoke").with_(parallel=2)  # the candidates train in parallel
    result = tune_mixing(folder, work, two_at_a_time, arm, policies=policies, log=lines.append)
    assert [c.policy for c in result.candidates] == list(policies)
    assert all(0.0 <= c.dice <= 1.0 and c.train_seconds > 0 for c in result.candidates)
    assert result.validation_cases and not set(result.validation_cases) & {"case_006", "case_007"}  # test cases
    assert set(result.validation_cases) <= {f"case_{i:03d}" for i in range(6)}
    stored = json.loads(tuning_file(work, "ctx").read_text())
    assert MixingSearchResult.from_dict(stored) == result and "no test case is read" in stored["scope"]
    recipe = json.loads((work / "tuning" / "ctx" / "p0.25" / "seed0" / "recipe.json").read_text())
    assert recipe["transforms"][0]["probability"] == 0.25
    # resumed, one at a time now (parallel runs do not change a candidate): nothing retrains
    lines.clear()
    again = tune_mixing(folder, work, get_profile("smoke"), arm, policies=policies, log=lines.append)
    assert again.candidates == result.candidates
    assert sum("finished before, skipped" in x for x in lines) == 2 and not any("nnUNetv2_train" in x for x in lines)


def _search_file(tmp_path, scenario="in-domain", dices=(0.5, 0.7, 0.6, 0.1)):
    f = tmp_path / "tuning_x.json"
    f.write_text(json.dumps({"command": "synthaug benchmark tune x", "scenario": scenario,
                             **_result(list(dices)).to_dict()}))
    return f


def test_a_search_file_makes_the_tuned_arm_beside_the_built_in_one(tmp_path):
    record = read_search(_search_file(tmp_path))
    assert record.scenario == "in-domain" and record.result.chosen == MixingPolicy(0.5)
    arm = _arm()
    smoke = get_profile("smoke")
    tuned = tuned_arm(arm, record, scenario="in-domain", test_cases=["t1"], profile=smoke)
    assert tuned.name == "mix_tuned" and tuned.fingerprint() != arm.fingerprint()
    assert sum(t["probability"] for t in tuned.recipe["transforms"]) == pytest.approx(0.5)
    assert tuned.recipe == apply_policy(arm, MixingPolicy(0.5), num_epochs=smoke.num_epochs).recipe
    with pytest.raises(ValidationError, match="searched arm 'mix', not 'other'"):
        tuned_arm(Arm("other", "o", arm.recipe), record, scenario="in-domain", test_cases=[], profile=smoke)
    with pytest.raises(ValidationError, match="searched at profile 'smoke', this run is 'cpu-long'"):
        tuned_arm(arm, record, scenario="in-domain", test_cases=[], profile=get_profile("cpu-long"))


def test_a_search_of_another_scenario_or_one_that_saw_a_test_case_is_refused(tmp_path):
    record = read_search(_search_file(tmp_path))
    with pytest.raises(LeakageError, match="searched on scenario 'in-domain', not 'cross-scanner'"):
        tuned_arm(_arm(), record, scenario="cross-scanner", test_cases=[], profile=get_profile("smoke"))
    with pytest.raises(LeakageError, match=r"validated on test case\(s\) \['case_001'\]"):
        tuned_arm(_arm(), record, scenario="in-domain", test_cases=["case_001"], profile=get_profile("smoke"))


def test_what_is_not_a_search_results_file_is_refused(tmp_path):
    with pytest.raises(DataError, match="does not exist: write one with 'synthaug benchmark tune"):
        read_search(tmp_path / "missing.json")
    work_record = tmp_path / "mix.json"  # WORK/tuning/ARM.json: no scenario
    work_record.write_text(json.dumps(_result([0.5, 0.7, 0.6, 0.1]).to_dict()))
    with pytest.raises(DataError, match="names no scenario"):
        read_search(work_record)
    broken = tmp_path / "broken.json"
    broken.write_text('{"scenario": "in-domain", "arm": "mix"}')
    with pytest.raises(DataError, match="not a mixing-search results file"):
        read_search(broken)
