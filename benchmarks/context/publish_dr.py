"""Publish the DR generators into the shipped registry with their metrics, and write their Markdown cards.

    .venv/bin/python benchmarks/context/publish_dr.py --runs runs/context_dr --results benchmarks/results/context_dr.json
    .venv/bin/python benchmarks/context/publish_dr.py --runs runs/context_dr --results benchmarks/results/context_dr_oasis.json \
        --single context_dr_oasis_ct_a=ct_a_oasis      # one single-stage run (the SPADE/OASIS-family model)

Uses the project's export path only: ``synthaug weights publish`` (copy + card + sha256 + metrics + notes) and
``synthaug weights info --markdown`` (docs/model_cards/<name>.md).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any

from synthaug.cli.main import main as cli
from synthaug.weights.store import read_card

RUNS = {"context_dr_ct_a": "ct_a_p2pf_stage2", "context_dr_mni": "mni_p2p_stage2"}
INIT = {"context_dr_ct_a": "context_ct_a", "context_mni": "context_mni", "context_dr_mni": "context_mni"}


def card_metrics(row: dict[str, Any], results_file: str = "benchmarks/results/context_dr.md") -> dict[str, Any]:
    """The compact metrics a card carries (the full rows stay in the results JSON)."""
    z, u = row["randomised"], row["uniform_in_dr_range"]
    keep = ("l1", "psnr", "ssim", "ssim_smoothed", "kid_x1000", "controllability", "controllability_per_feature",
            "controllability_calibrated", "n_slices")
    return {
        **{k: row[k] for k in keep},
        "randomised_range_controllability": z["controllability"],
        "randomised_range_per_feature": z["per_feature"],
        "randomised_range_controllability_calibrated": z["controllability_calibrated"],
        "randomised_range_mean_error_by_kind": {k: v["mean"] for k, v in z["by_kind"].items()},
        "randomised_range_ssim_vs_target": z["ssim_vs_target"],
        "randomised_range_psnr_vs_target": z["psnr_vs_target"],
        "randomised_range_requested_mean": "{:.2f}..{:.2f} (0..1 scale)".format(*z["requested_mean_range"]),
        "uniform_in_randomised_range_controllability": u["controllability"],
        "appearance_draws_per_slice": row["draws"],
        # Ranges as text: the Markdown card renders a numeric pair as "mean ± std".
        "appearance_ranges": {k: (f"{v[0]:g}..{v[1]:g}" if k.endswith("_range") else str(v)) if isinstance(v, list)
                              else v for k, v in row["dr_ranges"].items()},
        "results_file": results_file,
    }


def notes(name: str, card: Any, stage1: Any) -> str:
    cfg, cfg1 = card.training["config"], stage1.training["config"]
    data = "CT subject A, slices z000-093 only (the held-out slab z096-111, CT subject B and MR subject C were never seen)" \
        if cfg["data"] == "ct_a" else "the MNI152 2009 T1 template outside the held-out slab (2 mm in-plane)"
    return (
        f"Appearance-randomised (domain-randomised) ConText-GAN {cfg['variant'].upper()} trained by synthaug on {data}. "
        f"Two stages from the shipped {INIT[name]} weights: {cfg1['iterations']} iterations "
        f"({stage1.training['seconds']:.0f} s), then {cfg['iterations']} more ({card.training['seconds']:.0f} s; this "
        "card's config, init_from stage 1; wall-clock on a shared, loaded 2-core machine, 1 thread). In both, "
        f"{round(100 * cfg['appearance_prob'])} % of the training targets had every labelled region (background "
        "included, increasing curves only there) remapped by a random transfer function over the region's intensity "
        "quantiles (increasing, decreasing = inversion, or non-monotone), a random region mean, contrast factor and "
        "noise (synthaug.appearance.remap; the exact ranges are metrics.appearance_ranges); requested features were measured on the remapped target. feature_stats span the randomised "
        "targets (what transforms draw from in 'card' mode). Labels: "
        f"{card.training.get('label_source', '')}. Use with synthaug.appearance.sample_appearance + "
        "appearance_requests (randomised requests) or sample_physics + physics_requests (simulated-MR requests). "
        "Results: benchmarks/results/context_dr.md."
    )


def notes_single(card: Any, results_file: str) -> str:
    """Notes of a single-stage DR run (trained from scratch unless its config names init_from)."""
    cfg = card.training["config"]
    data = "CT subject A, slices z000-093 only (the held-out slab z096-111, CT subject B and MR subject C were never seen)" \
        if cfg["data"] == "ct_a" else f"the {cfg['data']!r} training data"
    start = f"from {Path(cfg['init_from']).stem}" if cfg.get("init_from") else "from scratch"
    family = "the SPADE/OASIS family (SPADE generator with 3D noise on the fusion module's context map, OASIS " \
        "segmentation discriminator, no L1 term)" if cfg["variant"] == "oasis" else cfg["variant"].upper()
    return (
        f"Appearance-randomised (domain-randomised) ConText-GAN of {family}, trained by synthaug {start} on {data}: "
        f"{cfg['iterations']} iterations, batch {cfg['batch_size']}, widths {cfg['widths']} "
        f"({card.training['seconds']:.0f} s wall-clock on a shared 2-core machine, 1 thread). "
        f"{round(100 * cfg['appearance_prob'])} % of the training targets had every labelled region remapped by a random "
        "transfer function (synthaug.appearance.remap; the exact ranges are metrics.appearance_ranges); requested "
        f"features were measured on the remapped target. Labels: {card.training.get('label_source', '')}. "
        f"Results: {results_file}."
    )


def _publish(source: Path, name: str, metrics: dict[str, Any], notes_text: str, cards: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metrics.json"
        path.write_text(json.dumps(metrics))
        code = cli(["weights", "publish", str(source), "--name", name, "--metrics", str(path), "--notes", notes_text])
        if code:
            raise SystemExit(code)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli(["weights", "info", name, "--markdown"])
    (cards / f"{name}.md").write_text(out.getvalue())
    print("wrote", cards / f"{name}.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/context_dr.json"))
    parser.add_argument("--cards", type=Path, default=Path("docs/model_cards"))
    parser.add_argument("--single", metavar="NAME=RUN", help="publish one single-stage run (RUNS/RUN/NAME.safetensors)")
    args = parser.parse_args()
    rows = {r["run"]: r for r in json.loads(args.results.read_text())["rows"] if r["role"] == "DR"}
    results_file = str(args.results.with_suffix(".md"))
    if args.single:
        name, run = args.single.split("=", 1)
        source = args.runs / run / f"{name}.safetensors"
        _publish(source, name, card_metrics(rows[run], results_file), notes_single(read_card(source), results_file),
                 args.cards)
        return
    for name, run in RUNS.items():
        source = args.runs / run / f"{name}.safetensors"
        card = read_card(source)
        stage1 = read_card(args.runs / run.replace("_stage2", "") / f"{name}.safetensors")
        _publish(source, name, card_metrics(rows[run], results_file), notes(name, card, stage1), args.cards)


if __name__ == "__main__":
    main()
