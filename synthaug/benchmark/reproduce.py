"""Reproduction check: rerun one (arm, seed) of a downstream report from a fresh work folder and compare.

:func:`reproduce` reads a report's JSON (``synthaug benchmark downstream`` / ``report`` write it beside the
Markdown), re-exports the built-in scenario (or uses the recorded / given nnU-Net raw dataset, checked to
have the same split), plans and preprocesses it in a fresh work folder exactly as the harness does, and
trains, predicts and scores the one run with the profile and the arm definition stored in the report. The
only change to the arm is its folder paths: a style bank under the original dataset folder points to the
fresh copy.

:func:`compare` (pure) puts the rerun's per-seed mean Dice (per evaluation group) beside the stored one and
says whether the difference lies within the run-to-run spread the report states: at most
``sqrt(2) * t(0.975, n - 1) * SD``, with SD the standard deviation of the arm's per-seed means over its
``n`` seeds in the report (:func:`synthaug.benchmark.statistics.spread_bound`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from synthaug._validate import check_folder
from synthaug.benchmark.report import read_report
from synthaug.errors import DataError, ValidationError

__all__ = ["GroupCheck", "compare", "reproduce", "reproduction_markdown", "read_report", "output_path"]

Log = Callable[[str], None]


@dataclass(frozen=True)
class GroupCheck:
    """One evaluation group of a reproduction check (Dice as fractions).

    Attributes:
        group: evaluation group name; held_out: whether it is a held-out test group.
        stored: the report's per-seed mean Dice of (arm, seed) over the group's cases.
        rerun: the rerun's value; difference: ``rerun - stored``.
        sd, n_seeds: standard deviation of the arm's per-seed means over its seeds in the report.
        bound: largest difference within the run-to-run spread (NaN when the report has < 2 seeds).
        within: True / False, or None when the spread is unknown.
        cases: per test case ``{"stored": Dice, "rerun": Dice}``.
    """

    group: str
    held_out: bool
    stored: float
    rerun: float
    difference: float
    sd: float
    n_seeds: int
    bound: float
    within: bool | None
    cases: Mapping[str, Mapping[str, float | None]]

    def verdict(self) -> str:
        if self.within is None:
            return f"spread unknown (the report has {self.n_seeds} seed(s) of this arm; 2 are needed)"
        return "within the run-to-run spread" if self.within else "OUTSIDE the run-to-run spread"


def compare(meta: Mapping[str, Any], results: Sequence[Mapping[str, Any]], rerun: Mapping[str, Any], *,
            arm: str, seed: int, level: float = 0.95) -> list[GroupCheck]:
    """The rerun ``rerun`` (a ``result.json``) of (``arm``, ``seed``) against the report's ``results``."""
    from synthaug.benchmark.report import per_seed_means
    from synthaug.benchmark.statistics import seed_sd, spread_bound

    mine = [r for r in results if r["arm"] == arm]
    stored_run = [r for r in mine if int(r["seed"]) == seed]
    if not stored_run:
        raise ValidationError(f"the report has no run of arm {arm!r} with seed {seed}; its seeds for {arm!r}: "
                              f"{sorted(int(r['seed']) for r in mine)}.")
    groups = meta.get("groups") or {"test": meta.get("test_cases", [])}
    held = set(meta.get("held_out_groups", list(groups)))
    out = []
    for g, cases in groups.items():
        per_seed = per_seed_means(mine, cases)
        new = per_seed_means([{**rerun, "seed": seed}], cases)
        if seed not in per_seed or seed not in new:
            continue
        sd = seed_sd(list(per_seed.values()))
        bound = spread_bound(sd, len(per_seed), level=level)
        diff = new[seed] - per_seed[seed]
        within = None if bound != bound else abs(diff) <= bound
        per_case = {c: {"stored": _case_mean(stored_run[0], c), "rerun": _case_mean(rerun, c)} for c in cases}
        out.append(GroupCheck(g, g in held, per_seed[seed], new[seed], diff, sd, len(per_seed), bound, within,
                              per_case))
    return out


def _case_mean(result: Mapping[str, Any], case: str) -> float | None:
    pc = result["cases"].get(case) or {}
    vals = [d for d in pc.values() if d is not None]
    return sum(vals) / len(vals) if vals else None


def _remap(value: Any, old: str, new: str) -> Any:
    """``value`` with every string path under ``old`` moved under ``new`` (recursively)."""
    if isinstance(value, str) and old and (value == old or value.startswith(old.rstrip("/") + "/")):
        return new + value[len(old):]
    if isinstance(value, Mapping):
        return {k: _remap(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_remap(v, old, new) for v in value]
    return value


def reproduce(report: str | os.PathLike[str], *, arm: str, seed: int, work: str | os.PathLike[str] | None = None,
              dataset: str | os.PathLike[str] | None = None, log: Log = print) -> tuple[dict[str, Any], Path]:
    """Rerun (``arm``, ``seed``) of ``report`` from a fresh ``work`` folder; return (record, work folder).

    ``work`` must not exist or be empty (default: a new temporary folder, kept). ``dataset``: the nnU-Net raw
    dataset for a report on a user dataset whose recorded folder moved (built-in scenarios are re-exported).
    The record holds the per-group :class:`GroupCheck` rows, the rerun's result and its provenance.
    """
    from synthaug.benchmark.downstream import (
        SCENARIO_IDS,
        arm_from_dict,
        open_dataset,
        prepare_scenario,
        run_benchmark,
    )
    from synthaug.benchmark.profiles import Profile
    from synthaug.benchmark.report import scenario_of

    payload = read_report(report)
    meta, results = payload["benchmark"], payload["results"]
    arms = {a["name"]: a for a in meta["arms"]}
    if arm not in arms:
        raise ValidationError(f"the report has no arm {arm!r}; its arms: {sorted(arms)}.")
    seeds = sorted(int(r["seed"]) for r in results if r["arm"] == arm)
    if seed not in seeds:
        raise ValidationError(f"the report has no run of arm {arm!r} with seed {seed}; its seeds for {arm!r}: {seeds}.")
    if work is None:
        work_dir = Path(tempfile.mkdtemp(prefix=f"synthaug-reproduce-{arm}-seed{seed}-"))
    else:
        work_dir = check_folder("--work", work)
        if work_dir.exists() and any(work_dir.iterdir()):
            raise ValidationError(f"--work {work_dir} is not empty; a reproduction starts from a fresh work folder. "
                                  "Give a new folder (or none: a temporary one is made).")
        work_dir.mkdir(parents=True, exist_ok=True)
    work_dir = work_dir.resolve()
    scenario = scenario_of(meta)
    if dataset is not None:
        data = Path(dataset)
    elif scenario in SCENARIO_IDS:
        data = prepare_scenario(scenario, work_dir / "source", log=log)
    elif Path(meta["source"]).is_dir():
        data = Path(meta["source"])
    else:
        raise DataError(f"the report's dataset folder {meta['source']} does not exist here; pass the nnU-Net raw "
                        "dataset with --dataset FOLDER.")
    ds = open_dataset(data)
    if list(ds.train_ids) != list(meta["train_cases"]) or list(ds.test_ids) != list(meta["test_cases"]):
        raise DataError(
            f"{data} does not have the report's split (training {list(meta['train_cases'])}, test "
            f"{list(meta['test_cases'])}; found {list(ds.train_ids)} and {list(ds.test_ids)}): the rerun would not "
            "be the same run."
        )
    definition = _remap(dict(arms[arm]), str(meta["source"]), str(ds.folder.resolve()))
    the_arm = arm_from_dict(definition)
    profile = Profile.from_dict(meta["profile"]).with_(seeds=(seed,), parallel=1)
    log(f"[reproduce] {arm} seed {seed}: profile {profile.name}, dataset {ds.folder}, work {work_dir}")
    (rerun,) = run_benchmark(ds.folder, work_dir, profile, [the_arm], log=log, require_default=False)
    level = float((payload.get("options") or {}).get("rule", {}).get("level", 0.95))
    checks = compare(meta, results, rerun, arm=arm, seed=seed, level=level)
    record = {
        "report": str(Path(report)), "arm": arm, "seed": seed, "work": str(work_dir), "dataset": str(ds.folder),
        "profile": profile.to_dict(), "arm_definition": definition,
        "paths_moved": definition != dict(arms[arm]),
        "report_commit": payload.get("commit"), "report_date": payload.get("date"),
        "checks": [asdict(c) for c in checks], "rerun": rerun,
    }
    return record, work_dir


def _pts(x: float | None) -> str:
    return "—" if x is None or x != x else f"{100 * x:.1f}"


def reproduction_markdown(record: Mapping[str, Any], *, command: str, machine: str, date: str,
                          commit: str) -> str:
    """The Markdown of a reproduction check (Dice in points)."""
    arm, seed = record["arm"], record["seed"]
    lines = [f"# Reproduction check: arm `{arm}`, seed {seed}", "",
             f"Date: {date}. Machine: {machine}. Commit: {commit}.", "", f"Command: `{command}`", "",
             f"Report: `{record['report']}` (written {record.get('report_date') or 'date unknown'}). Rerun from the fresh "
             f"work folder `{record['work']}` (scenario re-exported, planned and preprocessed again), profile "
             f"`{record['profile']['name']}`, the arm definition stored in the report"
             + (" (its dataset paths moved to the fresh copy)" if record.get("paths_moved") else "") + ".", "",
             "Rule: the rerun is consistent with the report when |rerun - stored| <= sqrt(2) x t(0.975, n-1) x SD, SD "
             "being the standard deviation of this arm's per-seed mean Dice over its n seeds in the report (two runs "
             "that vary as much as two seeds do differ by less in 95% of cases).", "",
             "| group | stored (seed mean Dice) | rerun | difference | SD over seeds (n) | bound | verdict |",
             "|---|---|---|---|---|---|---|"]
    for c in record["checks"]:
        diff = c["difference"]
        lines.append(f"| {c['group']}{'' if c['held_out'] else ' (report only)'} | {_pts(c['stored'])} | "
                     f"{_pts(c['rerun'])} | {'+' if diff >= 0 else ''}{_pts(diff)} | {_pts(c['sd'])} ({c['n_seeds']}) "
                     f"| {_pts(c['bound'])} | {GroupCheck(**c).verdict()} |")
    lines += ["", "Per test case (mean Dice over the classes scored):", "", "| case | stored | rerun |", "|---|---|---|"]
    seen = set()
    for c in record["checks"]:
        for case, v in c["cases"].items():
            if case not in seen:
                seen.add(case)
                lines.append(f"| {case} | {_pts(v['stored'])} | {_pts(v['rerun'])} |")
    return "\n".join(lines) + "\n"


def output_path(report: str | os.PathLike[str], arm: str, seed: int) -> Path:
    """``REPORT_reproduce_<arm>_seed<S>`` beside the report (no suffix)."""
    p = Path(report)
    stem = p.name[: -len(p.suffix)] if p.suffix in (".json", ".md") else p.name
    return p.parent / f"{stem}_reproduce_{arm}_seed{seed}"

