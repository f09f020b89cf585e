"""The downstream report's statistics: the seed-level interval against a hand-computed example, the claim
rule ("gain", "loss", "no harm", "not shown"), seed requirements, per-class headlines, never-predicted
classes, the label-noise ceiling and empty groups -- all on stored-result fixtures (no training)."""

import json
import math

import pytest

from synthaug.benchmark.profiles import get_profile
from synthaug.benchmark.report import (
    ClaimRule,
    Interval,
    arm_kind,
    claim,
    headline_classes_for,
    load_ceiling,
    markdown_report,
    per_seed_means,
    seed_interval,
    spread_bound,
    summarise,
)
from synthaug.errors import DataError, ValidationError

T_975_2 = 4.302652729911275  # Student t quantile, 0.975, 2 degrees of freedom (printed tables: 4.303)
T_975_4 = 2.7764451051977987  # 0.975, 4 degrees of freedom (tables: 2.776)


def test_seed_interval_matches_a_hand_computed_example():
    # per-seed differences 0.02, 0.04, 0.06: mean 0.04, sample SD 0.02, half-width t(0.975, 2) * 0.02 / sqrt(3)
    arm = {0: 0.50, 1: 0.60, 2: 0.70, 7: 0.99}  # seed 7 has no default run: not paired, not used
    ref = {0: 0.48, 1: 0.56, 2: 0.64, 9: 0.10}
    iv = seed_interval(arm, ref)
    half = T_975_2 * 0.02 / math.sqrt(3)  # = 0.049683
    assert iv.n == 3
    assert iv.mean == pytest.approx(0.04, abs=1e-12)
    assert iv.low == pytest.approx(0.04 - half, abs=1e-9) and iv.high == pytest.approx(0.04 + half, abs=1e-9)
    assert iv.low == pytest.approx(-0.009683, abs=1e-6)
    # crosses 0, lower bound -0.97 points > -1 point: "no harm" (enough seeds: 3 needed, default has 5)
    c = claim(iv, required=3, reference_seeds=5)
    assert c.word == "no harm" and c.text() == "no harm (lower bound -0.97 > -1)"
    # with a 0.5-point margin the same interval carries no claim
    c = claim(iv, required=3, reference_seeds=5, rule=ClaimRule(no_harm_margin=0.005))
    assert c.word == "not shown" and "crosses 0" in c.text()


def test_claim_words_follow_the_interval():
    gain = seed_interval({s: 0.5 + d for s, d in enumerate([0.03, 0.04, 0.05])}, {0: 0.5, 1: 0.5, 2: 0.5})
    assert gain.low == pytest.approx(0.04 - T_975_2 * 0.01 / math.sqrt(3))  # 0.0152 > 0
    assert claim(gain, required=3, reference_seeds=5).word == "gain"
    loss = Interval(-0.04, -0.06, -0.02, 5)
    assert claim(loss, required=5, reference_seeds=5).text() == "loss"
    crossing = seed_interval({0: 0.45, 1: 0.50, 2: 0.58}, {0: 0.50, 1: 0.50, 2: 0.50})
    assert crossing.low < 0 < crossing.high
    c = claim(crossing, required=3, reference_seeds=5)
    assert c.word == "not shown" and c.text().startswith("not shown (interval crosses 0, lower bound")


def test_claim_is_not_shown_when_seeds_are_too_few():
    strong = Interval(0.10, 0.08, 0.12, 4)  # a clear gain, but on 4 seeds
    assert claim(strong, required=5, reference_seeds=5).text() == "not shown (4 seeds < 5)"
    assert claim(strong, required=3, reference_seeds=5).word == "gain"
    # the reference needs key_seeds too
    assert claim(strong, required=3, reference_seeds=4).text() == "not shown (default: 4 seeds < 5)"
    one = seed_interval({0: 0.9}, {0: 0.1})
    assert one.n == 1 and not one.defined
    assert claim(one, required=3, reference_seeds=5).text() == "not shown (1 seeds < 3)"
    # never fewer than 2 paired seeds, whatever the rule asks
    assert claim(Interval(0.1, math.nan, math.nan, 1), required=2, reference_seeds=2,
                 rule=ClaimRule(key_seeds=2, other_seeds=2)).text() == "not shown (1 seeds < 2)"


def test_claim_rule_validates_and_warns_about_short_seed_lists():
    with pytest.raises(ValidationError, match="no_harm_margin"):
        ClaimRule(no_harm_margin=1.0)
    with pytest.raises(ValidationError, match="key_seeds"):
        ClaimRule(key_seeds=1)
    rule = ClaimRule()
    assert rule.shortfall(5) is None
    msg = rule.shortfall(2)
    assert "2 seed(s)" in msg and "needs 5" in msg and "--seeds" in msg
    assert '"no harm"' in rule.describe() and "-1 point" in rule.describe()


def test_spread_bound():
    assert spread_bound(0.01, 5) == pytest.approx(math.sqrt(2) * T_975_4 * 0.01)
    assert math.isnan(spread_bound(0.01, 1))


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
