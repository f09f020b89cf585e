"""Downstream benchmark report, built from stored per-case results only.

Headline (per evaluation group): the **seed-level paired difference** vs ``default``. The unit is one
seed: for each seed, the arm's mean Dice over the group's test cases minus ``default``'s mean Dice over the
same cases for the same seed (same split, same budget, same seed). The 95% Student-t interval is over
those per-seed differences (:func:`seed_interval`), and a claim word is printed only where the interval
supports it (:func:`claim`, :class:`ClaimRule`):

- ``gain``: the interval is above 0; ``loss``: below 0;
- ``no harm``: the interval crosses 0 but its lower bound is above ``-no_harm_margin`` (1 point by default);
- otherwise ``not shown`` (with the reason);
- ``not shown (n seeds < k)`` when the arm has fewer paired seeds than it needs: ``key_seeds`` (5) for
  ``default``, for the best synthaug arm (one that uses a learned generator) and for the best non-learned
  arm (no generator weights: ``synthseg``, ``heavy_intensity``, ``gaussian_mixture_mixed``, ...) of the
  report, ``other_seeds`` (3) for the others, and never fewer than 2 (no interval otherwise). "Best" is the
  largest mean seed-level difference on the first held-out group.

A case's Dice is the mean over the foreground classes nnU-Net scores for it (a class absent from both
reference and prediction has no Dice); the headline says which classes those are. The same seed-level
statistic is given per class for the scenario's headline classes (:data:`HEADLINE_CLASSES`), and, on
request, over the classes ``default`` learned (Dice > 0 in at least one of its units of the group).

Secondary tables: the case level (a unit is one (seed, test case), paired by seed and case), the slice
level (one seed x slice; adjacent slices are correlated, so these intervals are optimistic), per-class
means, the classes an arm never predicts, cost (wall time, peak memory, synthetic fraction), the arms,
the leakage check, the runs' git commits, the label-noise ceiling (an optional JSON file, see
:func:`load_ceiling`) and the run-to-run spread that ``synthaug benchmark reproduce`` checks against
(:func:`spread_bound`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthaug._validate import closest
from synthaug.benchmark.claims import Claim, ClaimRule, claim
from synthaug.benchmark.statistics import Interval, mean_ci, seed_interval, seed_sd, spread_bound
from synthaug.errors import DataError, ValidationError

__all__ = [
    "HEADLINE_CLASSES",
    "read_report",
    "Interval",
    "ClaimRule",
    "Claim",
    "Ceiling",
    "mean_ci",
    "seed_interval",
    "claim",
    "spread_bound",
    "seed_sd",
    "per_seed_means",
    "arm_kind",
    "scenario_of",
    "headline_classes_for",
    "load_ceiling",
    "default_never_predicted",
    "summarise",
    "markdown_report",
    "run_provenance",
    "write_report",
]

# Which classes carry each built-in scenario's story (the per-class headline), in one place. The report
# reads it; ``synthaug benchmark report --headline-class NAME`` (repeatable) overrides it.
HEADLINE_CLASSES: dict[str, tuple[str, ...]] = {
    # contrast-enhanced CT B: contrast changes the vessels' appearance most; no arm found them at cpu-quick
    "cross-scanner": ("cardiovascular",),
    # MR target: the large organs an MR model has to find from CT training data
    "cross-modality": ("liver", "kidneys"),
    # spine T2w MR: the vertebral body is the structure large enough to carry texture and the one spine models
    # are judged by first; the processes are a few voxels thick at 1.5 mm
    "spine-cross-modality": ("vertebral_body",),
}

KINDS = ("reference", "synthaug", "non-learned")


# ------------------------------------------------------------------------------------ arms, scenarios, inputs


def _recipe_weights(arm: Mapping[str, Any]) -> list[str]:
    out = []
    exp = arm.get("expansion") if isinstance(arm.get("expansion"), Mapping) else {}
    for recipe in (arm.get("recipe") or {}, exp.get("recipe") or {}):
        for t in recipe.get("transforms", []) if isinstance(recipe, Mapping) else []:
            w = (t.get("options") or {}).get("weights") if isinstance(t, Mapping) else None
            if w is not None:
                out.append(str(w))
    return out


def arm_kind(arm: Mapping[str, Any]) -> str:
    """``reference`` (``default``), ``synthaug`` (uses a learned generator's weights) or ``non-learned``.

    ``arm`` is an arm's stored definition (``Arm.to_dict()`` as in ``benchmark.json``).
    """
    if arm.get("name") == "default":
        return "reference"
    return "synthaug" if _recipe_weights(arm) else "non-learned"


def scenario_of(meta: Mapping[str, Any]) -> str | None:
    """The built-in scenario a benchmark ran on (recorded in ``benchmark.json``; older work folders:
    recognised by the scenario's dataset id and name), or None for a user dataset."""
    from synthaug.benchmark.downstream import SCENARIO_IDS

    if meta.get("scenario"):
        return str(meta["scenario"])
    name = str(meta.get("dataset", ""))
    for scenario, i in SCENARIO_IDS.items():
        if name.startswith(f"Dataset{i:03d}_SynthAug"):
            return scenario
    return None


def headline_classes_for(meta: Mapping[str, Any], classes: Sequence[str],
                         override: Sequence[str] | None = None) -> tuple[str, ...]:
    """The per-class headline classes: ``override`` (checked against ``classes``) or the scenario's
    :data:`HEADLINE_CLASSES` entry (classes the dataset lacks are dropped); () when none is declared."""
    if override:
        unknown = [c for c in override if c not in classes]
        if unknown:
            hint = closest(unknown[0], classes)
            raise ValidationError(f"--headline-class {unknown[0]!r} is not a class of this dataset; classes: "
                                  f"{list(classes)}.{hint}")
        return tuple(dict.fromkeys(override))
    declared = HEADLINE_CLASSES.get(scenario_of(meta) or "", ())
    return tuple(c for c in declared if c in classes)


@dataclass(frozen=True)
class Ceiling:
    """Label-noise ceiling of one evaluation group: Dice between two TotalSegmentator versions' labels of
    the same images (fractions in [0, 1])."""

    mean: float
    per_class: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "per_class": dict(self.per_class)}


def load_ceiling(path: str | Path) -> dict[str, Ceiling]:
    """Read ``{"group": {"mean": float, "per_class": {"class": float}}}`` (Dice fractions in [0, 1]), or the
    committed ``synthaug data label-ceiling`` file (``{"scenarios": [{"groups": [...]}, ...]}``, every available
    group of every scenario).

    Groups the report does not have are ignored (one file may cover every scenario).
    """
    p = Path(path)
    raw = _read_json(p, "ceiling file")
    if isinstance(raw, Mapping) and isinstance(raw.get("scenarios"), list):  # synthaug data label-ceiling
        raw = {str(g["group"]): {"mean": g["mean"], "per_class": g.get("per_class", {})}
               for sc in raw["scenarios"] if isinstance(sc, Mapping) and sc.get("available")
               for g in sc.get("groups", []) if isinstance(g, Mapping) and g.get("mean") is not None}
    example = '{"ct_b": {"mean": 0.81, "per_class": {"liver": 0.95, "spleen": 0.9}}}'
    if not isinstance(raw, Mapping):
        raise ValidationError(f"ceiling file {p} must hold an object keyed by group, e.g. {example}.")
    out = {}
    for group, entry in raw.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("per_class", {}), Mapping):
            raise ValidationError(f"ceiling file {p}, group {group!r}: expected {{'mean': float, 'per_class': "
                                  f"{{class: float}}}}, e.g. {example}.")
        values = {"mean": entry.get("mean"), **{f"per_class.{k}": v for k, v in entry.get("per_class", {}).items()}}
        for key, v in values.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
                raise ValidationError(f"ceiling file {p}, group {group!r}, {key}: expected a Dice fraction in "
                                      f"[0, 1], got {v!r}.")
        out[str(group)] = Ceiling(float(entry["mean"]),
                                  {str(k): float(v) for k, v in entry.get("per_class", {}).items()})
    return out


# ------------------------------------------------------------------------------------ per-unit values


def _unit_mean(per_class: Mapping[str, float | None], classes: Sequence[str] | None) -> float | None:
    vals = [d for k, d in per_class.items() if d is not None and (classes is None or k in classes)]
    return sum(vals) / len(vals) if vals else None


def _case_units(rs: Sequence[Mapping[str, Any]], cases: Sequence[str],
                classes: Sequence[str] | None) -> dict[int, dict[str, float]]:
    """seed -> case -> unit Dice (mean over ``classes`` scored for that case)."""
    out: dict[int, dict[str, float]] = {}
    for r in rs:
        for c in cases:
            pc = r["cases"].get(c)
            m = _unit_mean(pc, classes) if pc is not None else None
            if m is not None:
                out.setdefault(int(r["seed"]), {})[c] = m
    return out


def _per_seed(units: Mapping[int, Mapping[str, float]]) -> dict[int, float]:
    return {s: sum(v.values()) / len(v) for s, v in units.items() if v}


def per_seed_means(results: Sequence[Mapping[str, Any]], cases: Sequence[str],
                   classes: Sequence[str] | None = None) -> dict[int, float]:
    """seed -> mean Dice over ``cases`` of one arm's ``results`` (a case's Dice: mean over the scored
    ``classes``, None: all): the seed-level unit of the headline."""
    return _per_seed(_case_units(results, cases, classes))


def _paired_seed(units: Mapping[int, Mapping[str, float]], ref: Mapping[int, Mapping[str, float]],
                 level: float) -> Interval:
    """Seed-level paired difference over the cases both arms scored for each seed."""
    a: dict[int, float] = {}
    b: dict[int, float] = {}
    for s in set(units) & set(ref):
        common = sorted(set(units[s]) & set(ref[s]))
        if common:
            a[s] = sum(units[s][c] for c in common) / len(common)
            b[s] = sum(ref[s][c] for c in common) / len(common)
    return seed_interval(a, b, level=level)


def _never_predicted(rs: Sequence[Mapping[str, Any]], cases: Sequence[str], classes: Sequence[str]) -> list[str]:
    """Classes whose Dice is 0 or unscored in every (seed, case) unit of ``rs`` (empty when no unit)."""
    if not any(c in r["cases"] for r in rs for c in cases):
        return []
    out = []
    for k in classes:
        if all(not (r["cases"].get(c) or {}).get(k) for r in rs for c in cases):
            out.append(k)
    return out


def _no_voxel(rs: Sequence[Mapping[str, Any]], cases: Sequence[str], classes: Sequence[str]) -> list[str] | None:
    """Classes with no predicted voxel in any unit (None when the results lack voxel counts)."""
    if not rs or not all(isinstance(r.get("voxels"), Mapping) for r in rs):
        return None
    out = []
    for k in classes:
        counts = [(r["voxels"].get(c) or {}).get(k) for r in rs for c in cases if c in r["voxels"]]
        if counts and all(v is not None and int(v[1]) == 0 for v in counts):
            out.append(k)
    return out


def _reference_absent(results: Sequence[Mapping[str, Any]], cases: Sequence[str],
                      classes: Sequence[str]) -> list[str] | None:
    """Classes with no voxel in any reference label of ``cases`` (None when no result has voxel counts)."""
    for r in results:
        vox = r.get("voxels")
        if isinstance(vox, Mapping) and cases and all(c in vox for c in cases):
            return [k for k in classes if all(int((vox[c].get(k) or [0, 0])[0]) == 0 for c in cases)]
    return None


def _classes(meta: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> list[str]:
    """Foreground class names in label order (``benchmark.json`` labels, else the first result's)."""
    labels = meta.get("labels")
    if isinstance(labels, Mapping) and labels:
        return [k for k, v in sorted(labels.items(), key=lambda kv: kv[1]) if int(v) > 0]
    for r in results:
        for pc in r["cases"].values():
            return list(pc)
    return []


# ------------------------------------------------------------------------------------ summary


def _seed_view(by_arm: Mapping[str, Sequence[Mapping[str, Any]]], arms: Sequence[str], cases: Sequence[str],
               classes: Sequence[str] | None, level: float) -> dict[str, dict[str, Any]]:
    """Per arm: per-seed mean Dice, its spread and the seed-level paired difference vs default."""
    units = {a: _case_units(by_arm[a], cases, classes) for a in arms}
    ref = units.get("default", {})
    out = {}
    for a in arms:
        per_seed = _per_seed(units[a])
        sd = seed_sd(list(per_seed.values()))
        row: dict[str, Any] = {
            "seeds": sorted(per_seed), "per_seed": {str(s): v for s, v in sorted(per_seed.items())},
            "mean": sum(per_seed.values()) / len(per_seed) if per_seed else math.nan,
            "sd": sd, "spread_bound": spread_bound(sd, len(per_seed), level=level),
        }
        if a != "default":
            row["diff"] = _paired_seed(units[a], ref, level).to_dict()
        out[a] = row
    return out


def summarise(meta: Mapping[str, Any], results: Sequence[Mapping[str, Any]],
              classes: Sequence[str] | None = None, *, rule: ClaimRule | None = None,
              headline_classes: Sequence[str] | None = None, learned_classes: bool = False) -> dict[str, Any]:
    """Numbers of the report: per group, per arm (seed-level headline and claims, case- and slice-level
    intervals, per class, never-predicted classes) and cost per arm.

    ``classes`` restricts every mean to those classes (None: all); ``headline_classes`` overrides the
    scenario's :data:`HEADLINE_CLASSES`; ``learned_classes`` adds the seed-level headline over the classes
    ``default`` learned in each group.
    """
    rule = rule or ClaimRule()
    arms = [a["name"] for a in meta["arms"]]
    kinds = {a["name"]: arm_kind(a) for a in meta["arms"]}
    by_arm: dict[str, list[Mapping[str, Any]]] = {a: [r for r in results if r["arm"] == a] for a in arms}
    groups = meta.get("groups") or {"test": meta.get("test_cases", [])}
    held = list(meta.get("held_out_groups", list(groups)))
    all_classes = _classes(meta, results)
    scope = [k for k in all_classes if classes is None or k in classes]
    heads = headline_classes_for(meta, all_classes, headline_classes)
    out: dict[str, Any] = {"groups": {}, "cost": {}, "arms": arms, "kinds": kinds, "classes": scope,
                           "headline_classes": list(heads), "rule": dataclasses.asdict(rule)}
    for g, cases in groups.items():
        units = {a: {(s, c): v for s, cs in _case_units(by_arm[a], cases, classes).items() for c, v in cs.items()}
                 for a in arms}
        per_class: dict[str, dict[str, list[float]]] = {a: {} for a in arms}
        for a in arms:
            for r in by_arm[a]:
                for c in cases:
                    for k, d in (r["cases"].get(c) or {}).items():
                        if d is not None and (classes is None or k in classes):
                            per_class[a].setdefault(k, []).append(d)
        slice_units: dict[str, dict[tuple[int, str, int], float]] = {a: {} for a in arms}
        for a in arms:
            for r in by_arm[a]:
                for c in cases:
                    for z, pc in enumerate((r.get("slices") or {}).get(c, [])):
                        m = _unit_mean(pc, classes)
                        if m is not None:
                            slice_units[a][(r["seed"], c, z)] = m
        rows = {}
        for a in arms:
            mean, lo, hi, n = mean_ci(list(units[a].values()), rule.level)
            row: dict[str, Any] = {"mean": mean, "low": lo, "high": hi, "n": n,
                                   "per_class": {k: sum(v) / len(v) for k, v in per_class[a].items()}}
            sm, slo, shi, sn = mean_ci(list(slice_units[a].values()), rule.level)
            row["slice"] = {"mean": sm, "low": slo, "high": shi, "n": sn}
            if a != "default":
                keys = sorted(set(units[a]) & set(units.get("default", {})))
                d, dlo, dhi, dn = mean_ci([units[a][k] - units["default"][k] for k in keys], rule.level)
                row["diff"] = {"mean": d, "low": dlo, "high": dhi, "n": dn}
                skeys = sorted(set(slice_units[a]) & set(slice_units.get("default", {})))
                d, dlo, dhi, dn = mean_ci([slice_units[a][k] - slice_units["default"][k] for k in skeys], rule.level)
                row["slice_diff"] = {"mean": d, "low": dlo, "high": dhi, "n": dn}
            rows[a] = row
        never = {a: _never_predicted(by_arm[a], cases, scope) for a in arms if by_arm[a]}
        per_class_views = {k: {"arms": _seed_view(by_arm, arms, cases, [k], rule.level)}
                           for k in [*scope, *(h for h in heads if h not in scope)]}
        grp: dict[str, Any] = {
            "held_out": g in held, "cases": list(cases), "arms": rows,
            "seed_level": {"classes": scope, "arms": _seed_view(by_arm, arms, cases, classes, rule.level)},
            "never_predicted": never,
            "reference_absent": _reference_absent(results, cases, scope),
            "no_voxel": {a: v for a in arms if (v := _no_voxel(by_arm[a], cases, scope)) is not None},
            "per_class_seed": per_class_views,
            "headline_classes": {k: per_class_views[k] for k in heads},  # the same view objects, not recomputed
        }
        if learned_classes:
            learned = [k for k in scope if k not in never.get("default", scope)]
            grp["learned_classes"] = {"classes": learned, "arms": _seed_view(by_arm, arms, cases, learned, rule.level)
                                      if learned else {}}
        out["groups"][g] = grp
    _assign_claims(out, arms, kinds, held, rule)
    for a in arms:
        rs = by_arm[a]
        fractions = [e["synthetic_fraction"] for r in rs for e in r.get("synthaug_log", [])]
        out["cost"][a] = {
            "runs": len(rs),
            "seeds": sorted(int(r["seed"]) for r in rs),
            "train_seconds": _mean([r["train_seconds"] for r in rs]),
            "predict_seconds": _mean([r["predict_seconds"] for r in rs]),
            "peak_rss_mb": max((r["peak_rss_mb"] for r in rs), default=math.nan),
            "synthetic_fraction": _mean(fractions),
        }
    return out


def _assign_claims(out: dict[str, Any], arms: Sequence[str], kinds: Mapping[str, str], held: Sequence[str],
                   rule: ClaimRule) -> None:
    """Pick the best synthaug and non-learned arms (first held-out group, all-class headline), set every
    arm's seed requirement and the claims of every seed-level view."""
    groups = out["groups"]
    first = next((g for g in held if g in groups), next(iter(groups), None))
    best: dict[str, str | None] = {"synthaug": None, "non-learned": None}
    if first is not None:
        view = groups[first]["seed_level"]["arms"]
        for kind in best:
            cands = [(view[a]["diff"]["mean"], -i, a) for i, a in enumerate(arms)
                     if kinds[a] == kind and view[a]["diff"]["n"] > 0]
            if cands:
                best[kind] = max(cands)[2]
    required = {a: rule.key_seeds if (kinds[a] == "reference" or a in best.values()) else rule.other_seeds
                for a in arms}
    out["best"] = {**best, "group": first}
    out["required_seeds"] = required
    for grp in groups.values():
        views = [grp["seed_level"], *grp["per_class_seed"].values()]  # headline-class views are among these
        if "learned_classes" in grp:
            views.append(grp["learned_classes"])
        for view in views:
            ref = view["arms"].get("default", {})
            ref_seeds = len(ref.get("seeds", []))
            for a, row in view["arms"].items():
                row["required"] = required[a]
                if a == "default":
                    row["claim"] = Claim("reference", "").to_dict()
                    continue
                d = row["diff"]
                c = claim(Interval(d["mean"], d["low"], d["high"], d["n"]), required=required[a],
                          reference_seeds=ref_seeds, rule=rule)
                if c.word != "not shown" and not any(v > 0 for v in [*row["per_seed"].values(),
                                                                      *ref.get("per_seed", {}).values()]):
                    c = Claim("not shown", "Dice 0 in every seed of both arms: nothing learned to compare")
                row["claim"] = c.to_dict()
            view["best_vs_non_learned"] = _best_vs_non_learned(view, best, rule)


def _best_vs_non_learned(view: Mapping[str, Any], best: Mapping[str, str | None], rule: ClaimRule) -> dict[str, Any] | None:
    """The best synthaug arm minus the best non-learned arm, paired by seed, with its claim (both need
    ``rule.key_seeds`` seeds): does learned synthesis beat the strongest augmentation a user would try first?"""
    a, b = best.get("synthaug"), best.get("non-learned")
    if a is None or b is None or a not in view["arms"] or b not in view["arms"]:
        return None
    arm = {int(k): v for k, v in view["arms"][a]["per_seed"].items()}
    ref = {int(k): v for k, v in view["arms"][b]["per_seed"].items()}
    iv = seed_interval(arm, ref, level=rule.level)
    c = claim(iv, required=rule.key_seeds, reference_seeds=len(ref), rule=rule)
    if c.reason.startswith("default:"):
        c = Claim(c.word, c.reason.replace("default:", f"{b}:", 1))
    return {"arm": a, "reference": b, "diff": iv.to_dict(), "claim": c.to_dict()}


def _mean(v: Sequence[float]) -> float:
    v = [x for x in v if x == x]
    return sum(v) / len(v) if v else math.nan


def _read_json(p: Path, what: str, missing_hint: str = "") -> Any:
    """The JSON in ``p``; a missing or unparsable file is a :class:`DataError` naming ``what`` it should be."""
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise DataError(f"{what} {p} does not exist{missing_hint}.") from None
    except ValueError as exc:
        raise DataError(f"{what} {p} is not valid JSON ({exc}).") from None


def read_report(path: str | Path) -> dict[str, Any]:
    """A downstream report's JSON (``benchmark`` meta + ``results``); ``path`` may name its ``.md``."""
    p = Path(path)
    if p.suffix != ".json":
        p = p.with_suffix(".json")
    payload = _read_json(p, "report", "; give the report's .json (written beside its .md)")
    if not isinstance(payload, Mapping) or "benchmark" not in payload or "results" not in payload:
        raise DataError(f"{p} is not a downstream report JSON (it has no 'benchmark' and 'results').")
    return dict(payload)


def default_never_predicted(path: str | Path) -> dict[str, list[str]]:
    """Classes the ``default`` arm never predicts, per held-out group, in another report (its JSON, or a
    work folder): used to say which classes default never learns in-domain."""
    p = Path(path)
    if p.is_dir():
        from synthaug.benchmark.downstream import load_results

        meta, results = load_results(p)
    else:
        payload = read_report(p)
        meta, results = payload["benchmark"], payload["results"]
    s = summarise(meta, results)
    held = [g for g, v in s["groups"].items() if v["held_out"]]
    return {g: s["groups"][g]["never_predicted"].get("default", []) for g in held}


# ------------------------------------------------------------------------------------ provenance


def run_provenance(results: Sequence[Mapping[str, Any]], *, predates: Sequence[Any] = (),
                   repo: Path | None = None) -> dict[str, Any]:
    """The runs' commits and, per behaviour change (:class:`~synthaug.benchmark.provenance.Predates`), the
    runs made before it (``git merge-base --is-ancestor``) or whose commit cannot be checked."""
    from synthaug.benchmark.provenance import Commit, current_commit, is_ancestor, resolve_commit

    commits: dict[str, list[str]] = {}
    unknown: list[str] = []
    shas: dict[str, Commit] = {}
    for r in results:
        run = f"{r['arm']} seed {r['seed']}"
        c = Commit.from_dict(r.get("commit"))
        if c is None:
            unknown.append(run)
            continue
        commits.setdefault(c.label(), []).append(run)
        shas[run] = c
    changes = []
    for change in predates:
        sha = resolve_commit(change.commit, repo)
        before, cannot = [], list(unknown)
        for run, c in shas.items():
            inside = is_ancestor(sha, c.sha, repo)
            (cannot if inside is None else before if not inside else []).append(run)
        changes.append({"commit": change.commit, "sha": sha, "text": change.text, "predating": before,
                        "unknown": cannot})
    report = current_commit(repo)
    return {"report_commit": report.to_dict() if report else None, "run_commits": commits, "commit_unknown": unknown,
            "commits_differ": len({c.sha for c in shas.values()}) > 1, "predates": changes}


def _provenance_lines(prov: Mapping[str, Any]) -> list[str]:
    from synthaug.benchmark.provenance import Commit

    lines = ["## Provenance", ""]
    rc = Commit.from_dict(prov.get("report_commit"))
    lines.append(f"- Report built from commit {rc.label() if rc else 'unknown'}.")
    commits = prov.get("run_commits") or {}
    unknown = prov.get("commit_unknown") or []
    parts = [f"{label} ({len(runs)} run{'s' if len(runs) != 1 else ''})" for label, runs in commits.items()]
    if unknown:
        parts.append(f"commit unknown ({len(unknown)} run{'s' if len(unknown) != 1 else ''}: written before runs "
                     "recorded their commit)")
    lines.append(f"- Runs' commits: {'; '.join(parts) if parts else 'no runs'}.")
    if prov.get("commits_differ"):
        detail = "; ".join(f"{label}: {', '.join(runs)}" for label, runs in commits.items())
        lines.append(f"- **Warning: the runs come from different commits** ({detail}); arms compared across "
                     "commits may differ by more than their augmentation.")
    if any(c.endswith("(dirty)") for c in commits):
        lines.append("- Some runs were made with uncommitted changes (dirty): their commit does not pin their code.")
    for ch in prov.get("predates") or []:
        if ch["predating"]:
            lines.append(f"- **Warning: {len(ch['predating'])} run(s) predate {ch['commit']} ({ch['text']}):** "
                         f"{', '.join(ch['predating'])}.")
        if ch["unknown"]:
            lines.append(f"- **Warning: whether {len(ch['unknown'])} run(s) include {ch['commit']} ({ch['text']}) is "
                         f"unknown (commit unknown or not in this repository):** {', '.join(ch['unknown'])}.")
        if not ch["predating"] and not ch["unknown"]:
            lines.append(f"- Every run includes {ch['commit']} ({ch['text']}).")
    return lines + [""]


# ------------------------------------------------------------------------------------ markdown


def _pts(x: float) -> str:
    return "—" if x is None or x != x else f"{100 * x:.1f}"


def _signed(x: float) -> str:
    return "—" if x is None or x != x else f"{'+' if x >= 0 else ''}{100 * x:.1f}"


def _interval(lo: float, hi: float) -> str:
    return "—" if lo is None or lo != lo else f"[{100 * lo:.1f}, {100 * hi:.1f}]"


def _kind_label(s: Mapping[str, Any], a: str) -> str:
    kind = s["kinds"][a]
    return kind + (", best" if a in (s["best"]["synthaug"], s["best"]["non-learned"]) else "")


def _seed_table(s: Mapping[str, Any], view: Mapping[str, Any], ceiling: float | None = None) -> list[str]:
    lines = ["| arm | kind | seeds (needed) | mean Dice | vs default | 95% interval (seeds) | claim |",
             "|---|---|---|---|---|---|---|"]
    for a in s["arms"]:
        r = view["arms"].get(a)
        if r is None:
            continue
        seeds = f"{len(r['seeds'])} ({r['required']})"
        if a == "default":
            lines.append(f"| {a} | reference | {seeds} | {_pts(r['mean'])} | — | — | reference |")
            continue
        d = r["diff"]
        lines.append(f"| {a} | {_kind_label(s, a)} | {seeds} | {_pts(r['mean'])} | "
                     f"{_signed(d['mean']) if d['n'] else '—'} | {_interval(d['low'], d['high'])} | "
                     f"{r['claim']['text']} |")
    if ceiling is not None:
        lines.append(f"| label-noise ceiling | TotalSegmentator 2.10 vs 2.18 | — | {_pts(ceiling)} | — | — | — |")
    return lines


def _versus_line(view: Mapping[str, Any]) -> list[str]:
    """One line: the best synthaug arm vs the best non-learned arm, paired by seed (see _best_vs_non_learned)."""
    v = view.get("best_vs_non_learned")
    if not v:
        return []
    d = v["diff"]
    return [f"Best synthaug arm vs best non-learned arm, seed level: {v['arm']} - {v['reference']} = "
            f"{_signed(d['mean']) if d['n'] else '—'} {_interval(d['low'], d['high'])} over {d['n']} paired seed(s): "
            f"{v['claim']['text']}.", ""]


def _per_class_seed_lines(s: Mapping[str, Any], views: Mapping[str, Any], classes: Sequence[str],
                          rule: ClaimRule) -> list[str]:
    """Per class, each arm's seed-level difference to default with its claim word, and per arm whether
    every class is shown to lose at most the no-harm margin (every class "gain" or "no harm")."""
    arms = [a for a in s["arms"] if a != "default" and all(a in views[k]["arms"] for k in classes)]
    if not arms:
        return []
    margin = f"{100 * rule.no_harm_margin:g}"
    lines = ["", "Per class vs default, seed level (mean difference, 95% interval over paired seeds, claim):", "",
             "| arm | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    verdicts = []
    for a in arms:
        rows = {k: views[k]["arms"][a] for k in classes}
        cells = []
        for k in classes:
            d, word = rows[k]["diff"], rows[k]["claim"]["word"]
            cells.append(f"{_signed(d['mean'])} {_interval(d['low'], d['high'])} {word}" if d["n"] else "—")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
        words = {k: rows[k]["claim"]["word"] for k in classes}
        lost = [k for k, w in words.items() if w == "loss"]
        open_ = [k for k, w in words.items() if w == "not shown"]
        if lost:
            verdicts.append(f"- {a}: a class loses (interval below 0): {_class_list(lost)}.")
        elif open_:
            rest = "; the other classes gain or do no harm" if len(open_) < len(classes) else ""
            verdicts.append(f"- {a}: not shown for {_class_list(open_)} (a loss of more than {margin} point(s) is not "
                            f"excluded there, or too few seeds){rest}.")
        else:
            verdicts.append(f"- {a}: shown: every class gains or does no harm (lower bound > -{margin}).")
    return lines + ["", f"No class loses more than {margin} point(s) vs default (per class, seed level):", "",
                    *verdicts]


def _class_list(classes: Sequence[str]) -> str:
    return ", ".join(classes) if classes else "none"


def markdown_report(meta: Mapping[str, Any], results: Sequence[Mapping[str, Any]], *, title: str,
                    command: str = "", machine: str = "", date: str = "", notes: Sequence[str] = (),
                    plots: Mapping[str, str] | None = None, rule: ClaimRule | None = None,
                    headline_classes: Sequence[str] | None = None, learned_classes: bool = False,
                    ceiling: Mapping[str, Ceiling] | None = None,
                    in_domain_never: Mapping[str, Sequence[str]] | None = None,
                    provenance: Mapping[str, Any] | None = None) -> str:
    """The Markdown report (Dice in points = percent); see the module docstring for the statistics.

    ``ceiling``: label-noise ceiling per group (:func:`load_ceiling`; None: "not measured");
    ``in_domain_never``: the default arm's never-predicted classes in the in-domain report
    (:func:`default_never_predicted`), for reports of other scenarios; ``provenance``: :func:`run_provenance`.
    """
    rule = rule or ClaimRule()
    s = summarise(meta, results, rule=rule, headline_classes=headline_classes, learned_classes=learned_classes)
    prof = meta["profile"]
    lines = [f"# {title}", ""]
    if date or machine:
        lines += [f"Date: {date}. Machine: {machine}.", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    seeds_run = sorted({int(r["seed"]) for r in results})
    budget = (f"configuration {prof['configuration']}, plans {prof['plans']}"
              + (f" (features x{prof.get('width_factor') or 1}, cap {prof.get('features_cap')})"
                 if prof.get("features_cap") or prof.get("width_factor") else "")
              + f", {prof.get('num_epochs') or 1000} epochs x {prof.get('iterations_per_epoch') or 250} iterations, "
              f"seeds run {seeds_run} (per arm in the tables), test-time mirroring {'on' if prof.get('tta') else 'off'}, "
              f"device {prof['device']}"
              + (f", {prof['threads']} torch thread(s) and {prof.get('workers')} augmentation worker(s) per run, "
                 f"{prof.get('parallel', 1)} run(s) at a time" if prof.get("threads") else ""))
    classes = s["classes"]
    lines += [
        f"Dataset `{meta['dataset']}`: {len(meta['train_cases'])} training cases, test cases "
        f"{', '.join(meta['test_cases'])}. Profile `{prof['name']}`: {budget}. Labels are TotalSegmentator "
        "predictions (the references too), not manual ground truth, for the built-in scenarios.",
        "",
        "Dice in points (percent), nnU-Net's own evaluation (`compute_metrics_on_folder`). A case's Dice is the mean "
        f"over the foreground classes scored for it, among all {len(classes)}: {_class_list(classes)} (a class "
        "absent from both reference and prediction is not scored).",
        "",
        "**Headline: seed level.** The unit is one seed: the arm's mean Dice over the group's test cases minus "
        "default's for the same seed (same split, same budget). Intervals are 95% Student-t over the paired seeds. "
        + rule.describe() + " Best arms here (largest seed-level mean difference on "
        f"`{s['best']['group']}`): synthaug {s['best']['synthaug'] or '—'}, non-learned {s['best']['non-learned'] or '—'}.",
        "",
    ]
    test_only = set(meta.get("test_classes") or []) - set(meta.get("train_classes") or classes)
    if meta.get("test_classes") is not None and test_only:
        lines += [f"Classes in the test labels but in no training label: {_class_list(sorted(test_only))} "
                  "(no arm can learn them).", ""]
    if meta.get("ignored_runs"):
        lines += [f"{len(meta['ignored_runs'])} stored run(s) of another definition (changed arm, profile or split) are "
                  f"left out: {', '.join(meta['ignored_runs'])}.", ""]
    if provenance is not None:
        lines += _provenance_lines(provenance)
    for g, grp in s["groups"].items():
        tag = "held-out test" if grp["held_out"] else "reported only (not held out)"
        lines += [f"## Group `{g}` ({tag}: {', '.join(grp['cases']) or 'no test volume'})", ""]
        if not grp["cases"]:
            lines += ["Not shown: this group has no test volume.", ""]
            continue
        cg = ceiling.get(g) if ceiling is not None else None
        if ceiling is None:
            lines += ["Label-noise ceiling: not measured.", ""]
        elif cg is None:
            lines += ["Label-noise ceiling: not measured for this group.", ""]
        else:
            lines += [f"Label-noise ceiling (Dice between TotalSegmentator 2.10 and 2.18 labels of these images, the "
                      f"agreement a model trained on one version's labels can hope for): {_pts(cg.mean)} (mean); per "
                      "class in the per-class tables.", ""]
        lines += [f"### Headline: vs default, seed level (mean over all {len(classes)} classes scored per case)", ""]
        lines += _seed_table(s, grp["seed_level"], cg.mean if cg else None)
        lines.append("")
        lines += _versus_line(grp["seed_level"])
        never = grp["never_predicted"]
        if never:
            lines.append("Classes never predicted (Dice 0 or not scored in every seed x case unit of this group):")
            lines.append("")
            for a, ks in never.items():
                novox = grp["no_voxel"].get(a)
                extra = f" (not a single voxel predicted: {_class_list(novox)})" if novox else ""
                lines.append(f"- {a}: {_class_list(ks)}{extra}")
            lines.append("")
        absent = grp["reference_absent"]
        if absent is not None:
            lines += [f"Classes absent from every reference label of this group (nnU-Net's voxel counts): "
                      f"{_class_list(absent)}.", ""]
        if grp["held_out"]:
            if scenario_of(meta) == "in-domain":
                missing = [k + (" (not in the reference)" if absent and k in absent else "")
                           for k in never.get("default", [])]
                lines += [f"Classes the default arm never predicts in-domain (this group): {_class_list(missing)}."
                          + (" Classes present in the training and reference labels but never predicted were not "
                             "learned at this budget." if any("(" not in k for k in missing) else ""), ""]
            elif in_domain_never is not None:
                dn = sorted({k for ks in in_domain_never.values() for k in ks})
                lines += [f"Classes the default arm never predicts in-domain (in-domain report): {_class_list(dn)}; "
                          "a class missing there is a limit of the budget, not of the domain shift.", ""]
            else:
                lines += ["Classes the default arm never predicts in-domain: not given here (pass the in-domain "
                          "report with --in-domain).", ""]
        lc = grp.get("learned_classes")
        if lc is not None:
            lines += [f"### Over the classes default learned here ({len(lc['classes'])}: {_class_list(lc['classes'])}; "
                      "Dice > 0 in at least one default unit of this group)", ""]
            lines += _seed_table(s, lc) if lc["classes"] else ["Not shown: default learned no class here."]
            lines.append("")
            lines += _versus_line(lc) if lc["classes"] else []
        for k, view in grp["headline_classes"].items():
            ck = cg.per_class.get(k) if cg else None
            lines += [f"### Headline class `{k}`: vs default, seed level (Dice of {k} alone)", ""]
            lines += _seed_table(s, view, ck)
            lines.append("")
            lines += _versus_line(view)
        if not grp["headline_classes"]:
            lines += ["No headline class is declared for this scenario (synthaug.benchmark.report.HEADLINE_CLASSES; "
                      "--headline-class NAME sets them).", ""]
        lines += ["### Secondary: case level (a unit is one seed x test case, paired by seed and case)", "",
                  "| arm | mean Dice | 95% interval | n | vs default | 95% interval |", "|---|---|---|---|---|---|"]
        for a in s["arms"]:
            r = grp["arms"][a]
            d = r.get("diff")
            diff = f"{_signed(d['mean'])} | {_interval(d['low'], d['high'])}" if d and d["n"] else "— | —"
            lines.append(f"| {a} | {_pts(r['mean'])} | {_interval(r['low'], r['high'])} | {r['n']} | {diff} |")
        if any(grp["arms"][a]["slice"]["n"] for a in s["arms"]):
            lines += ["", "Slice level, optimistic (a unit is one seed x slice; the 2D model predicts slices "
                      "independently, but adjacent slices are correlated, so these intervals are too narrow):", "",
                      "| arm | mean Dice | 95% interval | n | vs default | 95% interval |", "|---|---|---|---|---|---|"]
            for a in s["arms"]:
                r = grp["arms"][a]["slice"]
                d = grp["arms"][a].get("slice_diff")
                diff = f"{_signed(d['mean'])} | {_interval(d['low'], d['high'])}" if d and d["n"] else "— | —"
                lines.append(f"| {a} | {_pts(r['mean'])} | {_interval(r['low'], r['high'])} | {r['n']} | {diff} |")
        pcs = [k for k in classes if any(k in grp["arms"][a]["per_class"] for a in s["arms"])]
        if pcs:
            lines += ["", "Per class (mean over seed x case units):", "",
                      "| arm | " + " | ".join(pcs) + " |", "|---|" + "---|" * len(pcs)]
            for a in s["arms"]:
                pc = grp["arms"][a]["per_class"]
                lines.append(f"| {a} | " + " | ".join(_pts(pc.get(k, math.nan)) for k in pcs) + " |")
            if cg is not None:
                lines.append("| label-noise ceiling | " + " | ".join(_pts(cg.per_class.get(k, math.nan)) for k in pcs)
                             + " |")
            lines += _per_class_seed_lines(s, grp["per_class_seed"], pcs, rule)
        lines.append("")
    lines += _spread_lines(s, rule)
    lines += ["## Cost per arm", "",
              "| arm | runs | train (s, mean) | predict (s, mean) | peak memory (MB, largest process) | synthetic fraction |",
              "|---|---|---|---|---|---|"]
    for a in s["arms"]:
        c = s["cost"][a]
        frac = "—" if c["synthetic_fraction"] != c["synthetic_fraction"] else f"{c['synthetic_fraction']:.2f}"
        lines.append(f"| {a} | {c['runs']} | {c['train_seconds']:.0f} | {c['predict_seconds']:.0f} | "
                     f"{c['peak_rss_mb']:.0f} | {frac} |")
    lines += ["", "## Arms", ""]
    for a in meta["arms"]:
        lines.append(f"- `{a['name']}` ({arm_kind(a)}): {a['description']}")
    gen = meta.get("generator_training_cases") or {}
    if gen:
        lines += ["", "## Leakage check", "",
                  "Every generator's model card lists its training cases; none overlaps a test case "
                  "(checked before any training):", ""]
        for w, cases in gen.items():
            lines.append(f"- `{w}`: {', '.join(cases)}")
    if plots:
        lines += ["", "## Plots", ""] + [f"![{k}]({v})" for k, v in plots.items()]
    if notes:
        lines += ["", "## Notes", ""] + [n if n.lstrip().startswith("- ") else f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _spread_lines(s: Mapping[str, Any], rule: ClaimRule) -> list[str]:
    g = s["best"]["group"]
    if g is None:
        return []
    view = s["groups"][g]["seed_level"]["arms"]
    lines = ["## Run-to-run spread", "",
             f"Standard deviation of each arm's per-seed mean Dice over its seeds (group `{g}`). `synthaug benchmark "
             "reproduce` calls a rerun of one (arm, seed) consistent with this report when it differs from the stored "
             f"value by at most sqrt(2) x t({0.5 + rule.level / 2:g}, n-1) x SD (the {round(100 * rule.level)}% range of "
             "the difference between two runs that vary as much as two seeds do; reruns of one seed also vary: "
             "nnU-Net on CPU is not bit-reproducible).", "",
             "| arm | seeds | per-seed mean Dice | SD | rerun bound |", "|---|---|---|---|---|"]
    for a in s["arms"]:
        r = view[a]
        per = ", ".join(f"{k}: {_pts(v)}" for k, v in r["per_seed"].items())
        lines.append(f"| {a} | {len(r['seeds'])} | {per or '—'} | {_pts(r['sd'])} | {_pts(r['spread_bound'])} |")
    return lines + [""]


# ------------------------------------------------------------------------------------ plots and files


def _plots(meta: Mapping[str, Any], results: Sequence[Mapping[str, Any]], work: Path, out: Path) -> dict[str, str]:
    """Per-class Dice bars (first held-out group) and qualitative slices; returns {title: relative path}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    s = summarise(meta, results)
    held = [g for g, v in s["groups"].items() if v["held_out"]] or list(s["groups"])
    g = held[0]
    grp = s["groups"][g]
    classes = [k for k in s["classes"] if any(k in grp["arms"][a]["per_class"] for a in s["arms"])]
    paths: dict[str, str] = {}
    if classes:
        fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(classes) * max(1, len(s["arms"])) / 3), 3.5))
        width = 0.8 / max(1, len(s["arms"]))
        x = np.arange(len(classes))
        for i, a in enumerate(s["arms"]):
            vals = [100 * grp["arms"][a]["per_class"].get(k, np.nan) for k in classes]
            ax.bar(x + i * width, vals, width, label=a)
        ax.set_xticks(x + 0.4 - width / 2)
        ax.set_xticklabels(classes, rotation=30, ha="right")
        ax.set_ylabel("Dice (points)")
        ax.set_title(f"{meta['dataset']} — group {g}")
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        name = f"{out.name}_per_class.png"
        fig.savefig(out.parent / name, dpi=90)
        plt.close(fig)
        paths["per-class Dice"] = name
    q = _qualitative(meta, results, work, out, g, plt, np)
    if q:
        paths["qualitative"] = q
    return paths


def _qualitative(meta, results, work: Path, out: Path, group: str, plt, np) -> str | None:
    import nibabel as nib

    src = Path(meta["source"])
    cases = meta["groups"][group] if meta.get("groups") else meta["test_cases"]
    if not cases:
        return None
    case = cases[0]
    ending = ".nii.gz"
    img_f, lab_f = src / "imagesTs" / f"{case}_0000{ending}", src / "labelsTs" / f"{case}{ending}"
    if not img_f.exists() or not lab_f.exists():
        return None
    img, lab = np.asarray(nib.load(img_f).dataobj, dtype=np.float32), np.asarray(nib.load(lab_f).dataobj)
    z = int(np.argmax((lab > 0).reshape(-1, lab.shape[-1]).sum(0))) if lab.ndim == 3 else 0
    panels = [("image", img[..., z]), ("reference", lab[..., z])]
    first = min(int(r["seed"]) for r in results)
    for r in results:
        if r["seed"] != first:
            continue
        p = work / "runs" / r["arm"] / f"seed{r['seed']}" / "pred" / f"{case}{ending}"
        if p.exists():
            panels.append((r["arm"], np.asarray(nib.load(p).dataobj)[..., z]))
    n_lab = max(int(lab.max()), 1)
    fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.6))
    lo, hi = np.percentile(img, [1, 99])
    for ax, (title, a) in zip(np.atleast_1d(axes), panels):
        if title == "image":
            ax.imshow(np.rot90(a), cmap="gray", vmin=lo, vmax=hi)
        else:
            ax.imshow(np.rot90(a), cmap="tab10", vmin=0, vmax=max(n_lab, 9), interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.suptitle(f"{case}, slice {z}", fontsize=8)
    fig.tight_layout()
    name = f"{out.name}_qualitative.png"
    fig.savefig(out.parent / name, dpi=90)
    plt.close(fig)
    return name


def write_report(work: str | Path, out: str | Path, *, title: str, command: str = "", machine: str = "",
                 date: str = "", notes: Sequence[str] = (), plots: bool = True, rule: ClaimRule | None = None,
                 headline_classes: Sequence[str] | None = None, learned_classes: bool = False,
                 ceiling: str | Path | None = None, in_domain: str | Path | None = None,
                 predates: Sequence[Any] = ()) -> Path:
    """Write ``out.md``, ``out.json`` (options, provenance, summary and every per-case result) and the plots
    from the stored results in ``work``.

    ``ceiling``: a label-noise ceiling JSON (:func:`load_ceiling`); ``in_domain``: the in-domain report's JSON
    or work folder (:func:`default_never_predicted`); ``predates``: behaviour changes to check the runs'
    commits against (:class:`~synthaug.benchmark.provenance.Predates`).
    """
    from synthaug.benchmark.downstream import load_results

    rule = rule or ClaimRule()
    work, out = Path(work), Path(out)
    meta, results = load_results(work)
    ceil = load_ceiling(ceiling) if ceiling is not None else None
    never_in = default_never_predicted(in_domain) if in_domain is not None else None
    prov = run_provenance(results, predates=predates)
    summary = summarise(meta, results, rule=rule, headline_classes=headline_classes, learned_classes=learned_classes)
    out.parent.mkdir(parents=True, exist_ok=True)
    figs = _plots(meta, results, work, out) if plots and results else {}
    md = markdown_report(meta, results, title=title, command=command, machine=machine, date=date, notes=notes,
                         plots=figs, rule=rule, headline_classes=headline_classes, learned_classes=learned_classes,
                         ceiling=ceil, in_domain_never=never_in, provenance=prov)
    out.with_suffix(".md").write_text(md)
    payload = {
        "command": command, "machine": machine, "date": date, "commit": prov["report_commit"],
        "title": title, "notes": list(notes),  # with the options below: what rebuilding the report needs
        "provenance": prov,
        "options": {"rule": dataclasses.asdict(rule), "headline_classes": summary["headline_classes"],
                    "learned_classes": learned_classes,
                    "ceiling": {g: c.to_dict() for g, c in ceil.items()} if ceil is not None else None,
                    "ceiling_file": str(ceiling) if ceiling is not None else None,
                    "in_domain_never_predicted": never_in,
                    "in_domain_file": str(in_domain) if in_domain is not None else None,
                    "predates": [f"{c.commit}:{c.text}" for c in predates]},
        "benchmark": meta, "summary": summary, "results": list(results),
    }
    out.with_suffix(".json").write_text(json.dumps(payload, indent=1, default=_nan_safe) + "\n")
    return out.with_suffix(".md")


def _nan_safe(o: Any) -> Any:
    return str(o)
