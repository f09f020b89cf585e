"""Evaluate every ConText-GAN run in a folder and write the committed results file.

    .venv/bin/python benchmarks/context/evaluate.py --runs runs/context --out benchmarks/results/context

Writes ``<out>.json`` (raw rows) and ``<out>.md`` (tables in the layout of the paper's Tables I/II,
plus inter-slice consistency of volumes made slice by slice, with the machine line and commands).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from synthaug.metrics.consistency import interslice_ratio
from synthaug.training.datasets import get_training_data
from synthaug.training.eval_context import evaluate_context, markdown_table
from synthaug.training.provenance import machine_line, today
from synthaug.transforms.context_texture import ContextTextureParams, ContextTextureSynth
from synthaug.weights.registry import card_of


def consistency(weights: Path, seed: int = 0) -> dict:
    """Synthesise the held-out volume slice by slice; compare its through/in-plane ratio with the real one."""
    card = card_of(weights)
    data = get_training_data(card.training["config"]["data"])
    vol = data.heldout[0]
    image, label = vol.image.astype(np.float32), vol.label.astype(np.int64)
    if data.spacing:
        zoom = (vol.spacing[0] / data.spacing, vol.spacing[1] / data.spacing, 1.0)
        image, label = ndimage.zoom(image, zoom, order=1), ndimage.zoom(label, zoom, order=0)
    img_t, lab_t = torch.from_numpy(image)[None], torch.from_numpy(label)[None]
    synth = ContextTextureSynth(weights, deform=False, features="perturb", perturbation=0.0)
    t0 = time.perf_counter()
    fake, _ = synth.apply(img_t, lab_t, ContextTextureParams(seed=seed, apply=True))
    seconds = time.perf_counter() - t0
    conv = card.intensity_convention
    fit = conv.fit(img_t)
    mask = lab_t[0] > 0
    real_r = interslice_ratio(conv.normalise(img_t[0], fit), mask=mask)
    fake_r = interslice_ratio(conv.normalise(fake[0], fit), mask=mask)
    return {
        "volume": vol.case_id, "shape": list(image.shape), "real_ratio": real_r, "synthetic_ratio": fake_r,
        "synthetic_over_real": fake_r / real_r, "seconds_per_volume": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=Path, nargs="+", default=[Path("runs/context_new")], help="run folders (each holds <run>/context_*.safetensors)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/context"))
    args = parser.parse_args()
    rows = []
    for weights in sorted(w for runs in args.runs for w in runs.glob("*/context_*.safetensors")):
        print("evaluating", weights)
        row = evaluate_context(weights)
        row["run"] = f"{weights.parent.parent.name}/{weights.parent.name}"
        row["consistency"] = consistency(weights)
        rows.append(row)
    order = {"ct_a": 0, "mni": 1}
    vorder = {"p2p": 0, "p2pf": 1, "oasis": 2}
    rows.sort(key=lambda r: (order.get(r["data"], 9), vorder.get(r["variant"], 9), r["run"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2))
    machine = f"{machine_line()}, date {today()}"
    lines = [
        "# ConText-GAN: realism, distribution distance, controllability (held-out slices)",
        "",
        f"Machine: {machine}. Trainings ran two at a time, one thread each.",
        "",
        "Commands:",
        "",
        "```bash",
        "benchmarks/context/train_all.sh runs/context_new    # trains the models below (settings inside)",
        f"{Path('.venv/bin/python')} benchmarks/context/evaluate.py --runs {' '.join(map(str, args.runs))} --out {args.out}",
        "```",
        "",
        "Data: `ct_a` = CT subject A (TotalSegmentator 2.18.0 test data), labels = TotalSegmentator **model "
        "predictions** grouped into 8 super-classes + background; held-out = the in-domain benchmark's test slab "
        "(never trained on; a 2-slice gap separates it from the training slabs). `mni` = MNI152 2009 T1 template "
        "(population average) with derived CSF/GM/WM labels, 2 mm in-plane; held-out = a central 24-slice slab "
        "with a 3-slice gap.",
        "",
        "Protocol (paper, section II-E): realism compares the output for an elastically deformed held-out label "
        "map (features measured on the equally deformed real image) with the deformed real image; L1/PSNR/SSIM on "
        "[0, 1]-scaled images. KID uses fixed random convolutional features (no Inception weights offline; not "
        "comparable to published FID/KID); it compares real held-out slices with random-context outputs. "
        "Controllability: features requested uniformly in each class's training range (model card), measured on "
        "the output; mean absolute error on the 0..100 scale over labelled regions (background excluded), "
        "averaged over mean intensity and entropy (a percent; the paper reports 4.5-8.4, lower is better).",
        "",
        markdown_table(rows),
        "## Inter-slice consistency (3D held-out volume synthesised slice by slice)",
        "",
        "Ratio = mean |difference| of neighbours across slices / within slices, inside the labelled region. "
        "A synthetic/real quotient near 1 means no more striping across slices than the real volume has.",
        "",
        "| run | data | variant | volume | real ratio | synthetic ratio | synthetic / real | seconds per volume (CPU) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = r["consistency"]
        lines.append(
            f"| {r['run']} | {r['data']} | {r['variant'].upper()} | {c['volume']} {tuple(c['shape'])} | {c['real_ratio']:.3f} | "
            f"{c['synthetic_ratio']:.3f} | {c['synthetic_over_real']:.2f} | {c['seconds_per_volume']} |"
        )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
