"""When a seed-level interval carries a claim word: the rule, declared once for the harness and the report, and
the word an interval earns under it."""

from __future__ import annotations

from dataclasses import dataclass

from synthaug.benchmark.statistics import Interval
from synthaug.errors import ValidationError

__all__ = ["ClaimRule", "Claim", "claim"]


@dataclass(frozen=True)
class ClaimRule:
    """When a seed-level interval carries a claim word.

    Attributes:
        no_harm_margin: "no harm" needs the interval's lower bound above ``-no_harm_margin`` (Dice as a
            fraction: 0.01 = 1 point).
        key_seeds: paired seeds needed by ``default``, the best synthaug arm and the best non-learned arm.
        other_seeds: paired seeds needed by every other arm.
        min_paired: never fewer paired seeds than this (an interval needs 2).
        level: interval level.
    """

    no_harm_margin: float = 0.01
    key_seeds: int = 5
    other_seeds: int = 3
    min_paired: int = 2
    level: float = 0.95

    def __post_init__(self) -> None:
        if not 0.0 <= self.no_harm_margin < 1.0:
            raise ValidationError(
                f"no_harm_margin is a Dice fraction in [0, 1) (0.01 = 1 point), got {self.no_harm_margin!r}.")
        for name in ("key_seeds", "other_seeds", "min_paired"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 2:
                raise ValidationError(f"{name} must be an integer >= 2 (an interval needs 2 seeds), got {v!r}.")
        if not 0.5 < self.level < 1.0:
            raise ValidationError(f"level must be in (0.5, 1), got {self.level!r}.")

    def shortfall(self, n_seeds: int) -> str | None:
        """A warning when ``n_seeds`` seeds per arm cannot carry a headline claim (None when they can)."""
        if n_seeds >= self.key_seeds:
            return None
        return (f"{n_seeds} seed(s) per arm: a headline claim needs {self.key_seeds} for default, the best synthaug "
                f"and the best non-learned arm and {self.other_seeds} for the others; the report will say "
                "\"not shown (n seeds < k)\" where they are missing. Add seeds with --seeds (finished runs are kept).")

    def describe(self) -> str:
        """The rule in words, for the report."""
        return (
            f'Claim words: "gain" where the {round(100 * self.level)}% seed-level interval is above 0, "loss" where it '
            f'is below 0, "no harm" where it crosses 0 but its lower bound is above -{100 * self.no_harm_margin:g} '
            f'point(s) (the no-harm margin), otherwise "not shown". Seeds needed (paired with default): '
            f"{self.key_seeds} for default, for the best synthaug arm and for the best non-learned arm, "
            f"{self.other_seeds} for every other arm; fewer gives \"not shown (n seeds < k)\"."
        )


@dataclass(frozen=True)
class Claim:
    """A claim word (``gain``, ``loss``, ``no harm``, ``not shown`` or ``reference``) and why."""

    word: str
    reason: str

    def text(self) -> str:
        if self.word == "not shown":
            return f"not shown ({self.reason})"
        if self.word == "no harm":
            return f"no harm ({self.reason})"
        return self.word

    def to_dict(self) -> dict[str, str]:
        return {"word": self.word, "reason": self.reason, "text": self.text()}


def _p(x: float) -> str:
    return f"{100 * x:.2f}"


def claim(interval: Interval, *, required: int, reference_seeds: int, rule: ClaimRule | None = None) -> Claim:
    """The claim ``interval`` (a :func:`~synthaug.benchmark.statistics.seed_interval`) supports under ``rule``.

    ``required``: paired seeds this arm needs; ``reference_seeds``: seeds the ``default`` arm has (it needs
    ``rule.key_seeds``). Too few seeds always give ``not shown (n seeds < k)``, whatever the interval.
    """
    rule = rule or ClaimRule()
    need = max(required, rule.min_paired)
    if interval.n < need:
        return Claim("not shown", f"{interval.n} seeds < {need}")
    if reference_seeds < rule.key_seeds:
        return Claim("not shown", f"default: {reference_seeds} seeds < {rule.key_seeds}")
    if not interval.defined:
        return Claim("not shown", "no interval")
    if interval.low > 0:
        return Claim("gain", f"interval [{_p(interval.low)}, {_p(interval.high)}] above 0")
    if interval.high < 0:
        return Claim("loss", f"interval [{_p(interval.low)}, {_p(interval.high)}] below 0")
    if interval.low > -rule.no_harm_margin:
        return Claim("no harm", f"lower bound {_p(interval.low)} > -{100 * rule.no_harm_margin:g}")
    return Claim("not shown", f"interval crosses 0, lower bound {_p(interval.low)} <= -{100 * rule.no_harm_margin:g}")
