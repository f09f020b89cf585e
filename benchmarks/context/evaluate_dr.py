"""Evaluate the appearance-randomised (DR) ConText-GAN generators against the shipped ones; write the results.

    .venv/bin/python benchmarks/context/evaluate_dr.py --dr runs/context_dr/ct_a_p2pf/context_dr_ct_a.safetensors \
        runs/context_dr/mni_p2p/context_dr_mni.safetensors --out benchmarks/results/context_dr

For each DR generator and the shipped generator of the same data (``context_ct_a`` / ``context_mni``):

1. realism and controllability in the card's own range, the protocol of benchmarks/context/evaluate.py
   (:func:`synthaug.training.eval_context.evaluate_context`: elastically deformed held-out label maps,
   features measured on the equally deformed real image, SSIM/PSNR/L1 on [0, 1]);
2. controllability across the DR generator's randomised range
   (:func:`synthaug.training.eval_dr.evaluate_appearance_control`), both models on the *same* requests:
   remapped held-out slices (``--draws`` appearance records per slice) and uniform requests in the DR card's
   per-class ranges;
3. a figure: one held-out CT label map rendered under 8 sampled appearances by the DR generator, by the
   shipped generator with the same requests, by the DR generator from the physics prior (simulated MR
   requests), beside SynthSeg-style output (GaussianMixtureSynth) of the same map.

Writes ``<out>.json`` (one row per model: the metrics attached to its card) and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from synthaug._optional import require
from synthaug.appearance.physics import SUPERCLASS_NAMES, class_signals
from synthaug.appearance.remap import remap_appearance, sample_appearance
from synthaug.appearance.requests import PhysicsDraw, measure_requests, render_physics
from synthaug.training.datasets import get_training_data
from synthaug.training.eval_context import evaluate_context
from synthaug.training.eval_dr import appearance_ranges_of, evaluate_appearance_control
from synthaug.training.provenance import machine_line, today
from synthaug.training.slices import cut_slices
from synthaug.transforms.labels_to_image import GaussianMixtureSynth
from synthaug.weights.registry import card_of, load

BASELINE = {"ct_a": "context_ct_a", "mni": "context_mni"}  # the shipped single-domain generator of the same data
DATA_NOTES = {
    "ct_a": "`ct_a` = CT subject A, labels = TotalSegmentator 2.18.0 **model predictions** grouped into 8 super-classes "
            "+ background; DR and shipped CT models trained on the slab ctA_z000-093 only, held-out = ctA_z096-111.",
    "mni": "`mni` = MNI152 2009 T1 template with derived CSF/GM/WM labels, held-out = central slab.",
    "spine_ct": "`spine_ct` = TPTBox 1.1.0 sample spine CT (73 x 73 x 47 at 1.5 mm), its vertebra-subregion mask in the "
                "synthaug spine vocabulary (6 classes + background; how the mask was made is not stated); trained on "
                "spineCt_z000-017 and spineCt_z028-046, held-out = spineCt_z020-025. No single-domain spine generator "
                "exists, so the DR model has no shipped baseline row.",
}


def _f(v: list[float], d: int = 2) -> str:
    return f"{v[0]:.{d}f} ± {v[1]:.{d}f}"


@torch.no_grad()
def figure(dr_weights: str, baseline: str | None, out: Path, *, seed: int = 0) -> dict[str, Any]:
    """The 8-appearance figure on the held-out slice with the most labelled classes (rows for the shipped baseline
    and the physics prior only where they exist: a baseline of the same data, a super-class vocabulary)."""
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    g_dr, card = load(dr_weights)
    td = get_training_data(card.training["config"]["data"])
    size = int(card.training["config"]["size"])
    held = cut_slices(td.heldout, intensity=card.intensity_convention, size=(size, size), spacing=td.spacing)
    n_classes = torch.stack([torch.bincount(m.flatten(), minlength=card.n_labels) > 20 for m in held.labels]).sum(1)
    k = int(torch.argmax(n_classes))
    img, lab = held.images[k : k + 1], held.labels[k : k + 1]
    names, bins, n = card.features.names, card.features.bins, card.n_labels
    gen = torch.Generator().manual_seed(seed)
    params = sample_appearance(8, generator=gen, ranges=appearance_ranges_of(card))
    labs, imgs = lab.expand(8, -1, -1), img.expand(8, -1, -1, -1)
    targets = remap_appearance(imgs, labs, params, n_labels=n)
    req = measure_requests(targets, labs, n_labels=n, names=names, bins=bins)
    noise = torch.Generator().manual_seed(seed + 1)
    dr = g_dr(labs, req, generator=noise)
    rows = [("remapped real slice\n(the request's source)", targets), (f"DR generator\n{card.name}", dr)]
    if baseline is not None:
        g_base, _ = load(baseline)
        rows.append((f"shipped {baseline}\n(same requests)", g_base(labs, req, generator=torch.Generator().manual_seed(seed + 1))))
    draw = PhysicsDraw(tuple(range(8)), ("T1w", "T2w", "in_phase", "opposed_phase") * 2, (1.5,) * 4 + (3.0,) * 4)
    physics = tuple(card.labels) == tuple(SUPERCLASS_NAMES)
    if physics:
        sim = render_physics(labs, draw)
        phys = g_dr(labs, measure_requests(sim, labs, n_labels=n, names=names, bins=bins), generator=noise)
        rows += [("DR generator, physics-\nprior requests", phys), ("simulated MR (physics\nprior, for reference)", sim)]
    gmm = GaussianMixtureSynth(output_range="unit")
    gmm_out = torch.cat([gmm.apply(img[0], lab, gmm.params_from_seed(s))[0] for s in range(8)])[:, None] * 2 - 1
    rows.append(("SynthSeg-style GMM\n(GaussianMixtureSynth)", gmm_out))
    phys_titles = [f"{c} {f:g} T" for c, f in zip(draw.contrasts, draw.fields_t, strict=True)]
    fig, axes = plt.subplots(len(rows), 10, figsize=(20, 2.1 * len(rows)))
    from matplotlib.colors import ListedColormap

    colours = ListedColormap(["black", *[plt.get_cmap("tab10")(i) for i in range(1, n)]])
    for r, (title, panel) in enumerate(rows):
        ax = axes[r, 0]
        ax.imshow(lab[0].numpy().T, cmap=colours, vmin=0, vmax=n - 1, interpolation="nearest", origin="lower")
        ax.set_ylabel(title, fontsize=8)
        axes[r, 1].imshow(img[0, 0].numpy().T, cmap="gray", vmin=-1, vmax=1, origin="lower")
        for c in range(8):
            axes[r, c + 2].imshow(panel[c, 0].numpy().T, cmap="gray", vmin=-1, vmax=1, origin="lower")
            if physics and title.startswith("DR generator, physics"):
                axes[r, c + 2].set_title(phys_titles[c], fontsize=7)
            elif r == 0:
                axes[r, c + 2].set_title(f"appearance {c}", fontsize=7)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("label map (held-out)", fontsize=7)
    axes[0, 1].set_title("real CT (held-out)", fontsize=7)
    fig.suptitle(f"One held-out label map ({held.case_ids[k]}, slice {held.slice_index[k]}) under 8 sampled appearances"
                 + ("; physics prior = simulated MR" if physics else ""), fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return {"case": held.case_ids[k], "slice": held.slice_index[k], "seed": seed, "baseline": baseline,
            "physics": physics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dr", nargs="+", required=True, help="DR weights files (or registry names)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/context_dr"))
    parser.add_argument("--draws", type=int, default=8, help="appearance records per held-out slice")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows: list[dict[str, Any]] = []
    done_baselines: set[str] = set()
    for w in args.dr:
        card = card_of(w)
        data = card.training["config"]["data"]
        ranges, stats = appearance_ranges_of(card), card.features.stats
        # Each shipped baseline once, on the ranges of the first DR model of its data listed.
        base = BASELINE.get(data)
        models = [str(w)] + ([base] if base is not None and base not in done_baselines else [])
        if base is not None:
            done_baselines.add(base)
        for model in models:
            print("evaluating", model, flush=True)
            row = evaluate_context(model, seed=args.seed)
            ctrl = evaluate_appearance_control(model, ranges=ranges, stats=stats, draws=args.draws, seed=args.seed)
            is_dr = model == str(w)
            row.update({"randomised": ctrl["randomised"], "uniform_in_dr_range": ctrl["uniform"], "dr_ranges": ctrl["ranges"],
                        "dr_reference": card.name, "draws": args.draws, "role": "DR" if is_dr else "shipped",
                        "variant": card_of(model).arguments.get("variant", ""),
                        "run": Path(w).parent.name if is_dr else "shipped"})
            rows.append(row)
    # the figure: the first CT super-class model listed (else the first model), beside its shipped baseline if any
    ct = [w for w in args.dr if card_of(w).training["config"]["data"] == "ct_a"] or list(args.dr)
    fig_data = card_of(ct[0]).training["config"]["data"]
    fig_path = args.out.with_name(args.out.name + "_figure.png")
    fig_info = figure(str(ct[0]), BASELINE.get(fig_data), fig_path, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"rows": rows, "figure": fig_info, "machine": machine_line(),
                                                        "date": today()}, indent=2))
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "benchmarks/context/evaluate_dr.py", *sys.argv[1:]])
    args.out.with_suffix(".md").write_text(markdown(rows, command, fig_path.name, fig_info))
    print(args.out.with_suffix(".md").read_text())


def _model(row: dict[str, Any]) -> str:
    """A row's model cell: the weights name and, where recorded, the generator variant."""
    return f"{row['weights']} ({row['variant']})" if row.get("variant") else str(row["weights"])


def markdown(rows: list[dict[str, Any]], command: str, figure_name: str, fig_info: dict | None) -> str:
    lines = [
        "# Appearance-randomised ConText-GAN generators (DR): realism, controllability across the randomised range",
        "",
        f"Machine: {machine_line()}, date {today()}. Trainings ran two at a time, one thread each, on a machine shared "
        "with other jobs (load 5-12 on 2 cores): training seconds are wall-clock under that load.",
        "",
        "Commands:",
        "",
        "```bash",
        *(["benchmarks/context/train_dr.sh runs/context_dr      # trains the CT and brain DR models (settings inside)"]
          if any(r["data"] in ("ct_a", "mni") for r in rows) else []),
        *(["benchmarks/context/train_dr_spine.sh runs/context_dr   # the spine DR model (settings inside)"]
          if any(r["data"] == "spine_ct" for r in rows) else []),
        *(["benchmarks/context/train_dr_oasis.sh runs/context_dr   # the SPADE/OASIS-family CT DR model (settings inside)"]
          if any(r.get("variant") == "oasis" for r in rows) else []),
        command,
        "```",
        "",
        "Data: " + " ".join(DATA_NOTES[d] for d in dict.fromkeys(r["data"] for r in rows) if d in DATA_NOTES)
        + " Physics-prior images are **simulated** MR.",
        "",
        "## Realism and controllability in each card's own range (protocol of benchmarks/context/evaluate.py)",
        "",
        "Realism: held-out label maps elastically deformed, features measured on the equally deformed *real* image, "
        "output vs deformed real image on [0, 1]. Controllability: uniform requests in the card's own per-class "
        "ranges (for a DR card: the randomised range), 0..100 scale, labelled regions.",
        "",
        "| model | run | role | data | L1 | PSNR (dB) | SSIM | SSIM smoothed | KID x1000 | controllability (%) | mean err | entropy err | calibrated (%) | iterations | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        pf = r["controllability_per_feature"]
        lines.append(
            f"| {_model(r)} | {r['run']} | {r['role']} | {r['data']} | {_f(r['l1'], 3)} | {_f(r['psnr'])} | {_f(r['ssim'], 3)} | "
            f"{_f(r['ssim_smoothed'], 3)} | {r['kid_x1000'][0]:.0f} | {_f(r['controllability'])} | {pf['mean'][0]:.2f} | "
            f"{pf['entropy'][0]:.2f} | {_f(r['controllability_calibrated'])} | {r['iterations']} | {r['training_seconds']} |"
        )
    lines += [
        "",
        "## Controllability across the randomised range (both models on the same requests)",
        "",
        "Randomised: each held-out slice remapped by sampled appearance records (the DR card's ranges; every region "
        "gets an increasing, decreasing (inversion) or non-monotone transfer function, a new mean in the whole range, "
        "a contrast factor and noise); the request is the remapped slice's features; error = |requested - produced| "
        "on the 0..100 scale over labelled regions. SSIM/PSNR vs target: output vs the remapped slice (does the "
        "texture follow the new appearance?). Uniform: requests uniform in the DR card's per-class ranges.",
        "",
        "| model | run | role | data | randomised: controllability (%) | mean err | entropy err | calibrated (%) | SSIM vs target | PSNR vs target (dB) | requested mean range (0..1) | uniform in DR range (%) | uniform, calibrated (%) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        z, u = r["randomised"], r["uniform_in_dr_range"]
        lines.append(
            f"| {_model(r)} | {r['run']} | {r['role']} | {r['data']} | {_f(z['controllability'])} | {z['per_feature']['mean'][0]:.2f} | "
            f"{z['per_feature']['entropy'][0]:.2f} | {_f(z['controllability_calibrated'])} | {_f(z['ssim_vs_target'], 3)} | "
            f"{_f(z['psnr_vs_target'])} | {z['requested_mean_range'][0]:.2f}-{z['requested_mean_range'][1]:.2f} | "
            f"{_f(u['controllability'])} | {_f(u['controllability_calibrated'])} |"
        )
    lines += ["", "Mean-intensity error (raw generator output, %) by transfer-function kind and by requested mean:", "",
              "| model | run | role | increasing | decreasing (inversion) | non-monotone | " +
              " | ".join(f"mean {b['requested_mean'][0]:.1f}-{b['requested_mean'][1]:.1f}" for b in rows[0]["randomised"]["by_requested_mean"]) + " |",
              "|---|---|---|---|---|---|" + "---|" * len(rows[0]["randomised"]["by_requested_mean"])]
    for r in rows:
        z = r["randomised"]
        kinds = " | ".join(f"{z['by_kind'][k]['mean'][0]:.1f} (n={z['by_kind'][k]['n']})" for k in ("increasing", "decreasing", "non_monotone"))
        bins = " | ".join(f"{b['mean'][0]:.1f} (n={b['n']})" for b in z["by_requested_mean"])
        lines.append(f"| {_model(r)} | {r['run']} | {r['role']} | {kinds} | {bins} |")
    if any(r["data"] == "ct_a" for r in rows):
        lines += _physics_table()
    lines += ["", "## Figure", ""]
    if fig_info:
        described = ["the remapped real slice whose features are the request", "the DR generator"]
        if fig_info.get("baseline", True):
            described.append("the shipped generator with the same requests")
        if fig_info.get("physics", True):
            described += ["the DR generator with physics-prior requests (features of simulated T1w/T2w/in-phase/"
                          "opposed-phase MR at 1.5 and 3 T of the same label map)", "that simulated MR"]
        described.append("SynthSeg-style GaussianMixtureSynth (8 seeds)")
        lines += [f"![DR figure]({figure_name})", "",
                  f"Held-out slice {fig_info['case']} z={fig_info['slice']}. Rows: " + "; ".join(described)
                  + ". Raw generator outputs (no region calibration)."]
    return "\n".join(lines) + "\n"


def _physics_table() -> list[str]:
    lines = ["", "## Physics prior: simulated class signals (noise-free, literature T1/T2/PD, mixture-weighted)", "",
              "Relative signal of each super-class (synthaug.appearance.physics.class_signals; sources in "
              "synthaug/data/abdominal_tissues.py). Simulated, not measured.", ""]
    contrasts = ("T1w", "T2w", "in_phase", "opposed_phase")
    table = {(c, f): class_signals(c, field_t=f) for c in contrasts for f in (1.5, 3.0)}
    classes = list(next(iter(table.values())))
    lines.append("| contrast | field (T) | " + " | ".join(classes) + " |")
    lines.append("|---|---|" + "---|" * len(classes))
    for (c, f), s in table.items():
        lines.append(f"| {c} | {f} | " + " | ".join(f"{s[k]:.3f}" for k in classes) + " |")
    return lines


if __name__ == "__main__":
    main()
