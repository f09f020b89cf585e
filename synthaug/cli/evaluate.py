"""``synthaug eval <family>``: score trained generators on held-out data; write JSON + a Markdown table.

- ``synthaug eval translate --weights W1 W2 ... [--data NAME] [--histogram-matching] --out results.json
  --markdown table.md``: every translation method and the histogram-matching baseline under one protocol
  (:mod:`synthaug.training.eval_translate`).
- ``synthaug eval context --weights W1 W2 ... [--data NAME] --out results.json --markdown table.md``:
  ConText-GAN generators (:mod:`synthaug.training.eval_context`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("eval", help="evaluate trained generators (JSON results + Markdown table)")
    families = parser.add_subparsers(dest="family", metavar="FAMILY", required=True)

    from synthaug.training.translate_spec import spec_syntax  # standard library only

    tr = families.add_parser(
        "translate",
        help="modality translation: every method side by side under one protocol",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Score translation weights (and the histogram-matching baseline) on held-out data: PSNR, SSIM,\n"
        "MAE (paired data), NGF alignment (faithfulness), KID on random conv features, Dice with a segmenter.\n"
        "Example: synthaug eval translate --weights runs/t1pd/translate.safetensors --data simulated:T1w:PDw \\\n"
        "           --out results.json --markdown table.md\n\n"
        f"Data (--data; the same forms as synthaug train translate --set data=...):\n{spec_syntax(lines=True)}",
    )
    tr.add_argument("--weights", nargs="*", default=[], metavar="W", help="weights files or registry names")
    tr.add_argument("--data", help="translation data, a built-in name or a spec such as simulated:T1w:PDw or "
                    "folder:SRC_DIR:TGT_DIR (default: the data the first card was trained on)")
    tr.add_argument("--histogram-matching", action="store_true", help="match every output to the target before scoring")
    tr.add_argument("--no-baseline", action="store_true", help="omit the histogram-matching baseline row")
    tr.add_argument("--overlap", type=float, default=0.5, help="patch overlap of 3D sliding-window inference")
    tr.add_argument("--weighting", choices=("uniform", "gaussian"), default="uniform", help="3D patch averaging")
    tr.add_argument("--min-foreground", type=float, default=0.05, help="score slices whose mask covers this fraction")
    tr.add_argument("--segmenter", help="frozen target-modality segmenter weights (synthaug train segmenter) for label "
                    "fidelity: Dice of its prediction on each output against the source labels")
    tr.add_argument("--out", type=Path, required=True, help="results JSON file")
    tr.add_argument("--markdown", type=Path, help="Markdown table file")
    tr.set_defaults(func=_eval_translate)

    ctx = families.add_parser(
        "context",
        help="ConText-GAN: realism, distribution distance and controllability on held-out slices",
        description="Example: synthaug eval context --weights runs/ct/context.safetensors --out results.json "
        "--markdown table.md",
    )
    ctx.add_argument("--weights", nargs="+", required=True, metavar="W", help="weights files or registry names")
    ctx.add_argument("--data", help="training-data name (default: each card's own)")
    ctx.add_argument("--seed", type=int, default=0, help="seed of the deformations and random contexts")
    ctx.add_argument("--out", type=Path, required=True, help="results JSON file")
    ctx.add_argument("--markdown", type=Path, help="Markdown table file")
    ctx.set_defaults(func=_eval_context)
    _register_style(families)


def _write(out: Path, payload: Any, markdown: Path | None, table: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(table)
    print(table)
    print(f"results: {out}" + (f"  table: {markdown}" if markdown else ""))


def _eval_translate(args: argparse.Namespace) -> int:
    from synthaug.training.eval_translate import evaluate_translation, markdown_table

    result = evaluate_translation(
        args.weights, data=args.data, histogram_matching=args.histogram_matching, baseline=not args.no_baseline,
        overlap=args.overlap, weighting=args.weighting, min_foreground=args.min_foreground, segmenter=args.segmenter,
    )
    _write(args.out, result, args.markdown, markdown_table(result))
    return 0


def _eval_context(args: argparse.Namespace) -> int:
    from synthaug.training.eval_context import evaluate_context, markdown_table

    rows = [evaluate_context(w, data=args.data, seed=args.seed) for w in args.weights]
    _write(args.out, {"rows": rows}, args.markdown, markdown_table(rows))
    return 0


def _register_style(families: Any) -> None:
    st = families.add_parser(
        "style",
        help="style swap: label fidelity, style match, realism, diversity (+ the unpaired noise ablation)",
        description="Example: synthaug eval style --weights runs/style_ct_a/style_ct_a.safetensors "
        "--segmenter runs/style_ct_a/segmenter/style_ct_a_segmenter.safetensors --out results.json --markdown table.md",
    )
    st.add_argument("--weights", nargs="+", required=True, metavar="W", help="style weights files or registry names")
    st.add_argument("--segmenter", help="frozen segmenter weights (default: the one recorded in each card, if present)")
    st.add_argument("--ablation-weights", nargs="*", default=[], metavar="W",
                    help="unpaired: extra weights (e.g. trained with z_dim=0) reported as noise-ablation rows")
    st.add_argument("--style-source", choices=("heldout", "ct_b"), default="heldout",
                    help="paired: style patients from the held-out slab, or CT B (another scanner)")
    st.add_argument("--truncation", type=float, default=1.0, help="bound a of the truncated-normal noise")
    st.add_argument("--noise-draws", type=int, default=4, help="outputs per input for the diversity measure")
    st.add_argument("--seed", type=int, default=0, help="noise seed")
    st.add_argument("--out", type=Path, required=True, help="results JSON file")
    st.add_argument("--markdown", type=Path, help="Markdown table file")
    st.set_defaults(func=_eval_style)


def _eval_style(args: argparse.Namespace) -> int:
    from synthaug.training.eval_style import evaluate_style, markdown_table

    rows = [
        evaluate_style(w, segmenter=args.segmenter, ablation_weights=args.ablation_weights,
                       style_source=args.style_source, truncation=args.truncation, noise_draws=args.noise_draws,
                       seed=args.seed)
        for w in args.weights
    ]
    _write(args.out, {"rows": rows}, args.markdown, markdown_table(rows))
    return 0
