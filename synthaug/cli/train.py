"""``synthaug train <family>``: train a generator family and export weights + model card."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthaug.training.config import apply_overrides, config_from_dict, read_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a generator (writes checkpoints, sample grids, weights + card)")
    families = parser.add_subparsers(dest="family", metavar="FAMILY", required=True)
    ctx = families.add_parser(
        "context",
        help="ConText-GAN: label map + texture features -> image (variants p2p, p2pf, oasis)",
        description="Options are ContextConfig fields: give a JSON file with --config and/or --set key=value. "
        "Example: synthaug train context --out runs/ct --set data=ct_a variant=p2pf iterations=3000",
    )
    ctx.add_argument("--out", type=Path, required=True, help="output folder (checkpoint, losses.jsonl, samples/, weights)")
    ctx.add_argument("--config", type=Path, help="JSON file with ContextConfig fields")
    ctx.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config fields")
    ctx.add_argument("--no-resume", action="store_true", help="refuse to continue an existing checkpoint")
    ctx.add_argument("--quiet", action="store_true", help="no progress bar")
    ctx.set_defaults(func=_train_context)


def _train_context(args: argparse.Namespace) -> int:
    from synthaug.errors import ValidationError
    from synthaug.training.train_context import ContextConfig, train_context

    values = apply_overrides(ContextConfig, read_config(ContextConfig, args.config), args.set)
    cfg = config_from_dict(ContextConfig, values)
    if args.no_resume and (args.out / "checkpoint.pt").exists():
        raise ValidationError(f"{args.out}/checkpoint.pt exists and --no-resume was given; choose another --out.")
    run = train_context(cfg, args.out, resume=not args.no_resume, progress=not args.quiet)
    print(f"trained {cfg.variant} on {cfg.data} for {cfg.iterations} iterations in {run.result.seconds:.0f} s")
    print(f"weights: {run.weights}  (sha256 {run.card.sha256[:12]}...)")
    print(f"model card: {run.weights.with_suffix('.json')}")
    return 0
