"""Seed-level statistics of the downstream benchmark: Student-t intervals over seeds, paired differences and
the run-to-run spread a reproduction is checked against. Pure functions of per-seed values (no I/O)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Interval", "mean_ci", "seed_interval", "spread_bound", "seed_sd"]


def mean_ci(values: Sequence[float | None], level: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, low, high, n) with a Student-t interval; the interval is NaN for fewer than 2 values.

    ``None`` and NaN values are dropped.
    """
    v = [float(x) for x in values if x is not None and x == x]
    n = len(v)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    m = sum(v) / n
    if n < 2:
        return m, math.nan, math.nan, n
    from scipy import stats

    sd = seed_sd(v)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return m, m - half, m + half, n


@dataclass(frozen=True)
class Interval:
    """A mean with its Student-t interval over ``n`` units (NaN bounds when ``n < 2``)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def defined(self) -> bool:
        return self.n >= 2 and self.low == self.low

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def seed_interval(arm: Mapping[int, float], reference: Mapping[int, float], *, level: float = 0.95) -> Interval:
    """Paired seed-level difference ``arm - reference`` with its Student-t interval over seeds.

    ``arm[s]`` / ``reference[s]``: the mean Dice over the test cases of the run with seed ``s``. Only seeds
    present in both are used (``n`` = paired seeds). Pure; e.g. differences 0.02, 0.04, 0.06 give mean 0.04
    and the interval 0.04 -/+ t(0.975, 2) * 0.02 / sqrt(3).

    >>> seed_interval({0: 0.50, 1: 0.60, 2: 0.70}, {0: 0.48, 1: 0.56, 2: 0.64}).n
    3
    """
    seeds = sorted(set(arm) & set(reference))
    m, lo, hi, n = mean_ci([arm[s] - reference[s] for s in seeds], level)
    return Interval(m, lo, hi, n)


def spread_bound(sd: float, n: int, *, level: float = 0.95) -> float:
    """Largest difference between two runs of one arm that is still within the run-to-run spread.

    ``sd`` is the standard deviation of the arm's per-seed mean Dice over its ``n`` seeds. Two runs that
    vary as much as two seeds do differ by at most ``sqrt(2) * t(0.5 + level/2, n - 1) * sd`` in 95% of cases
    (the difference of two such runs has standard deviation ``sqrt(2) * sd``). NaN for ``n < 2``.
    """
    if n < 2 or sd != sd:
        return math.nan
    from scipy import stats

    return math.sqrt(2.0) * float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd


def seed_sd(values: Sequence[float]) -> float:
    """Sample standard deviation (NaN for fewer than 2 values)."""
    v = [x for x in values if x == x]
    if len(v) < 2:
        return math.nan
    m = sum(v) / len(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))
