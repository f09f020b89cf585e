"""Downstream benchmark report, built from stored per-case results only.

Statistics (per evaluation group):

- a *unit* is one (seed, test case); its mean Dice is the mean over the foreground classes that are
  scored for it (nnU-Net gives no Dice when a class is absent from both reference and prediction);
- per arm: the mean over units with a 95% Student-t interval (over seeds and cases);
- per arm against ``default``: the paired difference (same seed, same case) with its 95% t interval;
  a loss shows as plainly as a gain (negative difference, interval below zero);
- per class: mean Dice over units per arm (table and bar plot);
- cost: wall time (train + predict) and peak memory per arm, and the synthetic fraction from the
  trainer's per-epoch log.

With few units (e.g. 2 seeds x 1 test volume) the intervals are wide; they are printed anyway, and
"n" says how many units they rest on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["summarise", "markdown_report", "write_report", "mean_ci"]


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, low, high, n) with a Student-t interval; the interval is NaN for fewer than 2 values."""
    v = [float(x) for x in values if x is not None and x == x]
    n = len(v)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    m = sum(v) / n
    if n < 2:
        return m, math.nan, math.nan, n
    from scipy import stats

    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return m, m - half, m + half, n


def _unit_mean(per_class: Mapping[str, float | None], classes: Sequence[str] | None) -> float | None:
    vals = [d for k, d in per_class.items() if d is not None and (classes is None or k in classes)]
    return sum(vals) / len(vals) if vals else None


def summarise(meta: Mapping[str, Any], results: Sequence[Mapping[str, Any]],
              classes: Sequence[str] | None = None) -> dict[str, Any]:
    """Numbers of the report: per group, per arm (means, intervals, paired differences, per class, cost)."""
    arms = [a["name"] for a in meta["arms"]]
    by_arm: dict[str, list[Mapping[str, Any]]] = {a: [r for r in results if r["arm"] == a] for a in arms}
    groups = meta.get("groups") or {"test": meta.get("test_cases", [])}
    held = set(meta.get("held_out_groups", list(groups)))
    out: dict[str, Any] = {"groups": {}, "cost": {}, "arms": arms}
    for g, cases in groups.items():
        units: dict[str, dict[tuple[int, str], float]] = {}
        per_class: dict[str, dict[str, list[float]]] = {}
        for a in arms:
            units[a] = {}
            per_class[a] = {}
            for r in by_arm[a]:
                for c in cases:
                    pc = r["cases"].get(c)
                    if pc is None:
                        continue
                    m = _unit_mean(pc, classes)
                    if m is not None:
                        units[a][(r["seed"], c)] = m
                    for k, d in pc.items():
                        if d is not None and (classes is None or k in classes):
                            per_class[a].setdefault(k, []).append(d)
        slice_units: dict[str, dict[tuple[int, str, int], float]] = {}
        for a in arms:
            slice_units[a] = {}
            for r in by_arm[a]:
                for c in cases:
                    for z, pc in enumerate((r.get("slices") or {}).get(c, [])):
                        m = _unit_mean(pc, classes)
                        if m is not None:
                            slice_units[a][(r["seed"], c, z)] = m
        rows = {}
        for a in arms:
            mean, lo, hi, n = mean_ci(list(units[a].values()))
            row: dict[str, Any] = {"mean": mean, "low": lo, "high": hi, "n": n,
                                   "per_class": {k: sum(v) / len(v) for k, v in per_class[a].items()}}
            sm, slo, shi, sn = mean_ci(list(slice_units[a].values()))
            row["slice"] = {"mean": sm, "low": slo, "high": shi, "n": sn}
            if a != "default":
                keys = sorted(set(units[a]) & set(units.get("default", {})))
                diffs = [units[a][k] - units["default"][k] for k in keys]
                d, dlo, dhi, dn = mean_ci(diffs)
                row["diff"] = {"mean": d, "low": dlo, "high": dhi, "n": dn}
                skeys = sorted(set(slice_units[a]) & set(slice_units.get("default", {})))
                d, dlo, dhi, dn = mean_ci([slice_units[a][k] - slice_units["default"][k] for k in skeys])
                row["slice_diff"] = {"mean": d, "low": dlo, "high": dhi, "n": dn}
            rows[a] = row
        out["groups"][g] = {"held_out": g in held, "cases": list(cases), "arms": rows}
    for a in arms:
        rs = by_arm[a]
        fractions = [e["synthetic_fraction"] for r in rs for e in r.get("synthaug_log", [])]
        out["cost"][a] = {
            "runs": len(rs),
            "seeds": [r["seed"] for r in rs],
            "train_seconds": _mean([r["train_seconds"] for r in rs]),
            "predict_seconds": _mean([r["predict_seconds"] for r in rs]),
            "peak_rss_mb": max((r["peak_rss_mb"] for r in rs), default=math.nan),
            "synthetic_fraction": _mean(fractions),
        }
    return out


def _mean(v: Sequence[float]) -> float:
    v = [x for x in v if x == x]
    return sum(v) / len(v) if v else math.nan


def _pts(x: float) -> str:
    return "—" if x != x else f"{100 * x:.1f}"


def _interval(lo: float, hi: float) -> str:
    return "—" if lo != lo else f"[{100 * lo:.1f}, {100 * hi:.1f}]"


def markdown_report(meta: Mapping[str, Any], results: Sequence[Mapping[str, Any]], *, title: str,
                    command: str = "", machine: str = "", date: str = "", notes: Sequence[str] = (),
                    plots: Mapping[str, str] | None = None) -> str:
    """The Markdown report (Dice in points = percent)."""
    s = summarise(meta, results)
    prof = meta["profile"]
    lines = [f"# {title}", ""]
    if date or machine:
        lines += [f"Date: {date}. Machine: {machine}.", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    budget = (f"configuration {prof['configuration']}, plans {prof['plans']}"
              + (f" (features x{prof.get('width_factor') or 1}, cap {prof.get('features_cap')})"
                 if prof.get("features_cap") or prof.get("width_factor") else "")
              + f", {prof.get('num_epochs') or 1000} epochs x {prof.get('iterations_per_epoch') or 250} iterations, "
              f"seeds {prof['seeds']}, test-time mirroring {'on' if prof.get('tta') else 'off'}, device {prof['device']}"
              + (f", {prof['threads']} torch thread(s) and {prof.get('workers')} augmentation worker(s) per run, "
                 f"{prof.get('parallel', 1)} run(s) at a time" if prof.get("threads") else ""))
    lines += [
        f"Dataset `{meta['dataset']}`: {len(meta['train_cases'])} training cases, test cases "
        f"{', '.join(meta['test_cases'])}. Profile `{prof['name']}`: {budget}.",
        "",
        "Dice in points (percent), nnU-Net's own evaluation (`compute_metrics_on_folder`). A unit is one "
        "(seed, test case): its Dice is the mean over the foreground classes scored for it. Intervals are 95% "
        "Student-t over units; *vs default* is the paired difference (same seed, same case).",
        "",
    ]
    for g, grp in s["groups"].items():
        tag = "held-out test" if grp["held_out"] else "reported only (not held out)"
        lines += [f"## Group `{g}` ({tag}: {', '.join(grp['cases'])})", "",
                  "| arm | mean Dice | 95% interval | n | vs default | 95% interval |", "|---|---|---|---|---|---|"]
        for a in s["arms"]:
            r = grp["arms"][a]
            d = r.get("diff")
            diff = (f"{'+' if d['mean'] >= 0 else ''}{_pts(d['mean'])} | {_interval(d['low'], d['high'])}"
                    if d and d["n"] else "— | —")
            lines.append(f"| {a} | {_pts(r['mean'])} | {_interval(r['low'], r['high'])} | {r['n']} | {diff} |")
        if any(grp["arms"][a]["slice"]["n"] for a in s["arms"]):
            lines += ["", "Slice level (a unit is one seed x slice; the 2D model predicts slices independently, but "
                      "adjacent slices are correlated, so these intervals are optimistic):", "",
                      "| arm | mean Dice | 95% interval | n | vs default | 95% interval |", "|---|---|---|---|---|---|"]
            for a in s["arms"]:
                r = grp["arms"][a]["slice"]
                d = grp["arms"][a].get("slice_diff")
                diff = (f"{'+' if d['mean'] >= 0 else ''}{_pts(d['mean'])} | {_interval(d['low'], d['high'])}"
                        if d and d["n"] else "— | —")
                lines.append(f"| {a} | {_pts(r['mean'])} | {_interval(r['low'], r['high'])} | {r['n']} | {diff} |")
        classes = sorted({k for a in s["arms"] for k in grp["arms"][a]["per_class"]})
        if classes:
            lines += ["", "Per class (mean over units):", "",
                      "| arm | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
            for a in s["arms"]:
                pc = grp["arms"][a]["per_class"]
                lines.append(f"| {a} | " + " | ".join(_pts(pc.get(k, math.nan)) for k in classes) + " |")
        lines.append("")
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
        lines.append(f"- `{a['name']}`: {a['description']}")
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
    classes = sorted({k for a in s["arms"] for k in grp["arms"][a]["per_class"]})
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
    case = meta["groups"][group][0] if meta.get("groups") else meta["test_cases"][0]
    ending = ".nii.gz"
    img_f, lab_f = src / "imagesTs" / f"{case}_0000{ending}", src / "labelsTs" / f"{case}{ending}"
    if not img_f.exists() or not lab_f.exists():
        return None
    img, lab = np.asarray(nib.load(img_f).dataobj, dtype=np.float32), np.asarray(nib.load(lab_f).dataobj)
    z = int(np.argmax((lab > 0).reshape(-1, lab.shape[-1]).sum(0))) if lab.ndim == 3 else 0
    panels = [("image", img[..., z]), ("reference", lab[..., z])]
    for r in results:
        if r["seed"] != min(meta["profile"]["seeds"]):
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
                 date: str = "", notes: Sequence[str] = (), plots: bool = True) -> Path:
    """Write ``out.md``, ``out.json`` (summary + every per-case result) and the plots from ``work``."""
    from synthaug.benchmark.downstream import load_results

    work, out = Path(work), Path(out)
    meta, results = load_results(work)
    out.parent.mkdir(parents=True, exist_ok=True)
    figs = _plots(meta, results, work, out) if plots and results else {}
    md = markdown_report(meta, results, title=title, command=command, machine=machine, date=date, notes=notes,
                         plots=figs)
    out.with_suffix(".md").write_text(md)
    payload = {"command": command, "machine": machine, "date": date, "benchmark": meta,
               "summary": summarise(meta, results), "results": list(results)}
    out.with_suffix(".json").write_text(json.dumps(payload, indent=1, default=_nan_safe) + "\n")
    return out.with_suffix(".md")


def _nan_safe(o: Any) -> Any:
    return str(o)
