"""The downstream report's statistics: the seed-level interval against a hand-computed example, the claim
rule ("gain", "loss", "no harm", "not shown"), seed requirements, per-class headlines, never-predicted
classes, the label-noise ceiling and empty groups -- all on stored-result fixtures (no training)."""

import json

import pytest

from synthaug.benchmark.profiles import get_profile
from synthaug.benchmark.report import (
    arm_kind,
    headline_classes_for,
    load_ceiling,
    markdown_report,
    per_seed_means,
    summarise,
)
from synthaug.errors import DataError, ValidationError

# ------------------------------------------------------------------------------------ fixtures

CLASSES = ("liver", "cardiovascular", "bone")
CTX = {"transforms": [{"name": "context_texture", "probability": 0.5, "options": {"weights": "context_ct_a"}}]}
GM = {"transforms": [{"name": "gaussian_mixture", "probability": 1.0}]}


def _meta(arms, groups=None, scenario="cross-scanner"):
    groups = groups or {"ct_b": ["t1", "t2"]}
    return {"dataset": "Dataset512_SynthAugCrossScanner", "scenario": scenario, "source": "/nonexistent",
            "arms": arms, "profile": get_profile("smoke").to_dict(), "train_cases": ["c0"],
            "test_cases": [c for ids in groups.values() for c in ids], "groups": groups,
            "held_out_groups": list(groups)[:1], "labels": {"background": 0, **{k: i + 1 for i, k in enumerate(CLASSES)}},
            "generator_training_cases": {}}


def _run(arm, seed, liver, bone=0.5, cardio=0.0):
    cases = {c: {"liver": liver + (0.01 if c == "t2" and liver else 0.0), "cardiovascular": cardio, "bone": bone}
             for c in ("t1", "t2")}
    return {"arm": arm, "seed": seed, "cases": cases, "slices": {}, "train_seconds": 1.0, "predict_seconds": 1.0,
            "peak_rss_mb": 1.0, "synthaug_log": []}


ARMS = [{"name": "default", "description": "d", "recipe": {"transforms": []}},
        {"name": "ctx", "description": "c", "recipe": CTX},
        {"name": "gm", "description": "g", "recipe": GM},
        {"name": "other", "description": "o", "recipe": CTX},
        {"name": "few", "description": "f", "recipe": CTX}]


def _results():
    out = []
    for s in range(5):
        out.append(_run("default", s, 0.60 + 0.01 * s))
        out.append(_run("ctx", s, 0.66 + 0.01 * s + (0.002 if s % 2 else -0.002)))  # +0.06 liver, every seed
        out.append(_run("gm", s, 0.0, bone=0.55))  # liver lost on every seed
    for s in range(3):
        out.append(_run("other", s, 0.60 + 0.01 * s + (0.03 if s == 1 else -0.01)))  # noisy: crosses 0
    for s in range(2):
        out.append(_run("few", s, 0.90))  # large gain, 2 seeds only
    return out


def test_arm_kinds_come_from_the_recipes():
    assert [arm_kind(a) for a in ARMS] == ["reference", "synthaug", "non-learned", "synthaug", "synthaug"]
    exp = {"name": "exp", "description": "", "recipe": {"transforms": []}, "expansion": {"recipe": CTX, "per_case": 2}}
    assert arm_kind(exp) == "synthaug"


def test_summary_headline_best_arms_requirements_and_claims():
    s = summarise(_meta(ARMS), _results())
    assert s["best"] == {"synthaug": "few", "non-learned": "gm", "group": "ct_b"}
    assert s["required_seeds"] == {"default": 5, "ctx": 3, "gm": 5, "other": 3, "few": 5}
    view = s["groups"]["ct_b"]["seed_level"]["arms"]
    # unit = seed: the mean over the two test cases, averaged over the 3 classes
    assert view["default"]["per_seed"]["0"] == pytest.approx(((0.60 + 0.5) + (0.61 + 0.5)) / 2 / 3)
    assert per_seed_means([r for r in _results() if r["arm"] == "default"], ["t1", "t2"])[0] == pytest.approx(
        view["default"]["per_seed"]["0"])
    assert view["ctx"]["claim"]["word"] == "gain" and view["ctx"]["diff"]["n"] == 5
    assert view["gm"]["claim"]["word"] == "loss"
    assert view["other"]["claim"]["word"] == "not shown" and "crosses 0" in view["other"]["claim"]["reason"]
    assert view["few"]["claim"]["text"] == "not shown (2 seeds < 5)"  # the best arm needs 5 seeds
    # per-class headline for the scenario: cardiovascular never predicted by anyone -> nothing to claim
    cv = s["groups"]["ct_b"]["headline_classes"]["cardiovascular"]["arms"]
    assert cv["ctx"]["claim"]["word"] == "not shown" and "Dice 0" in cv["ctx"]["claim"]["reason"]
    never = s["groups"]["ct_b"]["never_predicted"]
    assert never["default"] == ["cardiovascular"] and never["gm"] == ["liver", "cardiovascular"]


def test_markdown_headline_never_silent():
    meta = _meta(ARMS)
    md = markdown_report(meta, _results(), title="T", learned_classes=True)
    assert "### Headline: vs default, seed level (mean over all 3 classes scored per case)" in md
    assert "| few | synthaug, best | 2 (5) |" in md and "not shown (2 seeds < 5) |" in md
    assert "| ctx | synthaug | 5 (3) |" in md and "| gain |" in md
    assert "| gm | non-learned, best | 5 (5) |" in md and "| loss |" in md
    assert "among all 3: liver, cardiovascular, bone" in md
    assert "- default: cardiovascular" in md and "- gm: liver, cardiovascular" in md
    assert "### Headline class `cardiovascular`" in md
    assert "### Over the classes default learned here (2: liver, bone;" in md
    assert "Label-noise ceiling: not measured." in md
    assert "Slice level" not in md  # no slice results in the fixture
    assert "## Run-to-run spread" in md and "sqrt(2) x t(0.975, n-1) x SD" in md
    assert "Classes the default arm never predicts in-domain: not given here" in md


def test_default_with_too_few_seeds_blocks_every_claim():
    results = [r for r in _results() if not (r["arm"] == "default" and r["seed"] == 4)]
    view = summarise(_meta(ARMS), results)["groups"]["ct_b"]["seed_level"]["arms"]
    assert view["ctx"]["claim"]["text"] == "not shown (default: 4 seeds < 5)"
    assert view["other"]["claim"]["text"] == "not shown (default: 4 seeds < 5)"


def test_group_without_test_volume_is_not_shown():
    meta = _meta(ARMS[:2], groups={"ct_b": ["t1", "t2"], "empty": []})
    md = markdown_report(meta, [r for r in _results() if r["arm"] in ("default", "ctx")], title="T")
    assert "## Group `empty` (reported only (not held out): no test volume)" in md
    assert "Not shown: this group has no test volume." in md


def test_headline_classes_are_declared_per_scenario_and_overridable():
    meta = _meta(ARMS)
    assert headline_classes_for(meta, CLASSES) == ("cardiovascular",)
    assert headline_classes_for({**meta, "scenario": "cross-modality"}, CLASSES) == ("liver",)  # kidneys: absent
    assert headline_classes_for({**meta, "scenario": "in-domain"}, CLASSES) == ()
    assert headline_classes_for(meta, CLASSES, ["bone", "liver"]) == ("bone", "liver")
    with pytest.raises(ValidationError, match="Did you mean 'liver'"):
        headline_classes_for(meta, CLASSES, ["livr"])
    # older benchmark.json without "scenario": recognised by the dataset id
    assert headline_classes_for({k: v for k, v in meta.items() if k != "scenario"}, CLASSES) == ("cardiovascular",)
    s = summarise(meta, _results(), headline_classes=["bone"])
    assert list(s["groups"]["ct_b"]["headline_classes"]) == ["bone"]


def test_label_noise_ceiling_file(tmp_path):
    f = tmp_path / "ceiling.json"
    f.write_text(json.dumps({"ct_b": {"mean": 0.8, "per_class": {"liver": 0.95, "cardiovascular": 0.7}},
                             "other_scenario_group": {"mean": 0.5, "per_class": {}}}))
    ceiling = load_ceiling(f)
    assert ceiling["ct_b"].mean == 0.8
    md = markdown_report(_meta(ARMS), _results(), title="T", ceiling=ceiling)
    assert "Label-noise ceiling (Dice between TotalSegmentator 2.10 and 2.18" in md and "80.0 (mean)" in md
    assert "| label-noise ceiling | TotalSegmentator 2.10 vs 2.18 | — | 80.0 |" in md  # beside the headline
    assert "| label-noise ceiling | TotalSegmentator 2.10 vs 2.18 | — | 70.0 |" in md  # cardiovascular headline
    assert "| label-noise ceiling | 95.0 | 70.0 | — |" in md  # per-class table (bone not measured)
    md = markdown_report(_meta(ARMS), _results(), title="T", ceiling={"elsewhere": ceiling["ct_b"]})
    assert "Label-noise ceiling: not measured for this group." in md
    f.write_text(json.dumps({"ct_b": {"mean": 81.0, "per_class": {}}}))
    with pytest.raises(ValidationError, match="fraction in \\[0, 1\\]"):
        load_ceiling(f)
    f.write_text(json.dumps(["ct_b"]))
    with pytest.raises(ValidationError, match="keyed by group"):
        load_ceiling(f)
    with pytest.raises(DataError, match="does not exist"):
        load_ceiling(tmp_path / "missing.json")


def test_in_domain_report_names_the_classes_default_never_predicts_and_why():
    results = _results()
    for r in results:  # voxel counts: cardiovascular is in no reference label of the group
        r["voxels"] = {c: {"liver": [50, 40], "cardiovascular": [0, 0], "bone": [30, 30]} for c in ("t1", "t2")}
    meta = _meta(ARMS, scenario="in-domain")
    s = summarise(meta, results)
    assert s["groups"]["ct_b"]["reference_absent"] == ["cardiovascular"]
    assert s["groups"]["ct_b"]["no_voxel"]["default"] == ["cardiovascular"]
    md = markdown_report(meta, results, title="T")
    assert "Classes absent from every reference label of this group (nnU-Net's voxel counts): cardiovascular." in md
    assert "never predicts in-domain (this group): cardiovascular (not in the reference)." in md
    assert "- default: cardiovascular (not a single voxel predicted: cardiovascular)" in md


def test_best_synthaug_arm_is_compared_with_the_best_non_learned_arm_paired_by_seed():
    """Issue 15's second goal ('>= +10 over the best non-learned arm') gets its own seed-level interval and claim."""
    results = [r for r in _results() if r["arm"] in ("default", "ctx", "gm")]
    arms = [a for a in ARMS if a["name"] in ("default", "ctx", "gm")]
    s = summarise(_meta(arms), results)
    v = s["groups"]["ct_b"]["seed_level"]["best_vs_non_learned"]
    assert (v["arm"], v["reference"]) == ("ctx", "gm")
    # per seed: ctx = (2 L + 0.01 + 1.0) / 6, gm = 1.1 / 6 with L = 0.66 + 0.01 s -/+ 0.002 -> mean (2 * 0.6796 - 0.09) / 6
    assert v["diff"]["n"] == 5 and v["diff"]["mean"] == pytest.approx((2 * 0.6796 - 0.09) / 6)
    assert v["claim"]["word"] == "gain"
    md = markdown_report(_meta(arms), results, title="T")
    assert "Best synthaug arm vs best non-learned arm, seed level: ctx - gm = +21.2 [" in md
    # too few seeds of the non-learned arm: not shown, and the reason names that arm
    fewer = [r for r in results if not (r["arm"] == "gm" and r["seed"] == 4)]
    v = summarise(_meta(arms), fewer)["groups"]["ct_b"]["seed_level"]["best_vs_non_learned"]
    assert v["claim"]["text"] == "not shown (4 seeds < 5)"


def test_per_class_seed_level_table_says_whether_any_class_loses_more_than_the_margin():
    """Issue 15's in-domain goal ("no class losing more than 1 point"): each class gets its own seed-level
    difference and claim; an arm passes only when every class gains or does no harm."""
    res = []
    for s in range(5):
        res.append(_run("default", s, 0.60 + 0.01 * s, cardio=0.3))
        res.append(_run("ctx", s, 0.66 + 0.01 * s + (0.002 if s % 2 else -0.002), cardio=0.3))  # liver gain
        res.append(_run("gm", s, 0.0, bone=0.55, cardio=0.3))  # liver lost, bone gained
    arms = ARMS[:3]
    s = summarise(_meta(arms), res)
    per = s["groups"]["ct_b"]["per_class_seed"]
    assert set(per) == set(CLASSES)
    assert per["liver"]["arms"]["ctx"]["claim"]["word"] == "gain"
    assert per["bone"]["arms"]["ctx"]["claim"]["word"] == "no harm"  # identical bone Dice on every seed
    assert per["liver"]["arms"]["gm"]["claim"]["word"] == "loss" and per["bone"]["arms"]["gm"]["claim"]["word"] == "gain"
    assert per["liver"]["arms"]["ctx"]["diff"]["mean"] == pytest.approx(0.06 - 0.002 / 5)
    md = markdown_report(_meta(arms), res, title="T")
    assert "Per class vs default, seed level (mean difference, 95% interval over paired seeds, claim):" in md
    assert "- ctx: shown: every class gains or does no harm (lower bound > -1)." in md
    assert "- gm: a class loses (interval below 0): liver." in md
    # a class nobody predicts cannot show "no harm": the verdict stays open
    md = markdown_report(_meta(ARMS), _results(), title="T")
    assert "- ctx: not shown for cardiovascular" in md
    assert "the other classes gain or do no harm." in md.split("- ctx: not shown for cardiovascular")[1].splitlines()[0]
    # when every class is open, the verdict names them and claims nothing of "the other classes"
    few = [r for r in res if r["seed"] < 3]
    md = markdown_report(_meta(arms), few, title="T")
    line = next(x for x in md.splitlines() if x.startswith("- ctx: not shown for"))
    assert line.startswith("- ctx: not shown for " + ", ".join(CLASSES)) and "other classes" not in line
