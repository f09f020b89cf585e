"""The claim word an interval earns ("gain", "loss", "no harm", "not shown") and the rule behind it."""

import math

import pytest

from synthaug.benchmark.claims import ClaimRule, claim
from synthaug.benchmark.statistics import Interval, seed_interval
from synthaug.errors import ValidationError

T_975_2 = 4.302652729911275  # Student t quantile, 0.975, 2 degrees of freedom (printed tables: 4.303)
T_975_4 = 2.7764451051977987  # 0.975, 4 degrees of freedom (tables: 2.776)


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
