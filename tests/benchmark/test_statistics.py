"""Seed-level statistics: the paired interval over seeds against a hand-computed example, the run-to-run
spread bound."""

import math

import pytest

from synthaug.benchmark.claims import ClaimRule, claim
from synthaug.benchmark.statistics import mean_ci, seed_interval, seed_sd, spread_bound

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


def test_spread_bound():
    assert spread_bound(0.01, 5) == pytest.approx(math.sqrt(2) * T_975_4 * 0.01)
    assert math.isnan(spread_bound(0.01, 1))


def test_mean_ci_and_seed_sd_drop_missing_values():
    m, lo, hi, n = mean_ci([0.1, None, float("nan"), 0.3])
    assert n == 2 and m == pytest.approx(0.2)
    assert hi - m == pytest.approx(12.706204736174698 * seed_sd([0.1, 0.3]) / math.sqrt(2))
    assert mean_ci([])[3] == 0 and math.isnan(mean_ci([0.5])[1])
    assert math.isnan(seed_sd([0.5]))
