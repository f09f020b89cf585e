"""``synthaug train <family>``: train a generator family and export weights + model card.

Every family takes the same options: ``--out``, a JSON ``--config`` of its dataclass config,
``--set key=value`` overrides, ``--no-resume`` and ``--quiet``. Families are a table (name ->
config class and train function), registered when their module exists; registering imports nothing
heavy (the training module, and torch with it, is imported when the command runs).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Family:
    name: str
    module: str  # defines <config> and <train>(cfg, out_dir, *, resume, progress) -> run with .weights, .card
    config: str
    train: str
    help: str
    example: str


FAMILIES = (
    Family("context", "synthaug.training.train_context", "ContextConfig", "train_context",
           "ConText-GAN: label map + texture features -> image (variants p2p, p2pf, oasis)",
           "synthaug train context --out runs/ct --set data=ct_a variant=p2pf iterations=3000"),
    Family("translate", "synthaug.training.train_translate", "TranslateConfig", "train_translate",
           "modality translation: NEC, CycleGAN (unpaired), pix2pix, ResGAN (paired), 2D slices or 3D patches",
           "synthaug train translate --mode pix2pix --out runs/t1pd --set data=simulated:T1w:PDw iterations=3000"),
    Family("style", "synthaug.training.train_style", "StyleConfig", "train_style",
           "per-organ style swap: content labels + style patient -> image (paired CT, or unpaired CT labels -> MR)",
           "synthaug train style --out runs/style_ct_a --set mode=paired iterations=3000"),
    Family("segmenter", "synthaug.training.train_segmenter", "SegmenterConfig", "train_segmenter",
           "small 2D U-Net segmenter on real slices only (frozen judge / consistency network)",
           "synthaug train segmenter --out runs/seg_ct_a --set data=ct_a iterations=1000"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a generator (writes checkpoints, sample grids, weights + card)")
    families = parser.add_subparsers(dest="family", metavar="FAMILY", required=True)
    for fam in FAMILIES:
        if importlib.util.find_spec(fam.module) is None:
            continue  # family not part of this version
        p = families.add_parser(
            fam.name, help=fam.help, formatter_class=argparse.RawDescriptionHelpFormatter,
            description=f"Options are {fam.config} fields: give a JSON file with --config and/or --set key=value.\n"
            f"Example: {fam.example}{_data_forms(fam.name)}",
        )
        p.add_argument("--out", type=Path, required=True, help="output folder (checkpoint, losses.jsonl, samples/, weights)")
        p.add_argument("--config", type=Path, help=f"JSON file with {fam.config} fields")
        p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config fields")
        p.add_argument("--no-resume", action="store_true", help="refuse to continue an existing checkpoint")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        if fam.name == "translate":
            p.add_argument("--mode", choices=("nec", "cyclegan", "pix2pix", "resgan"), help="method (overrides the config's mode)")
        p.set_defaults(func=_run, family_spec=fam)


def _data_forms(family: str) -> str:
    """The ``data=`` forms a family reads (translate: every kind of :mod:`synthaug.training.translate_spec`)."""
    if family != "translate":
        return ""
    from synthaug.training.translate_spec import spec_syntax  # standard library only

    return f"\n\nData (--set data=...; the test cases are held out and listed in the model card):\n{spec_syntax(lines=True)}"


def _run(args: argparse.Namespace) -> int:
    from synthaug.errors import ValidationError
    from synthaug.training.config import apply_overrides, config_from_dict, read_config

    fam: Family = args.family_spec
    module = importlib.import_module(fam.module)
    config_cls, train = getattr(module, fam.config), getattr(module, fam.train)
    values = apply_overrides(config_cls, read_config(config_cls, args.config), args.set)
    if getattr(args, "mode", None):
        values["mode"] = args.mode
    cfg = config_from_dict(config_cls, values)
    if args.no_resume and (args.out / "checkpoint.pt").exists():
        raise ValidationError(f"{args.out}/checkpoint.pt exists and --no-resume was given; choose another --out.")
    run: Any = train(cfg, args.out, resume=not args.no_resume, progress=not args.quiet)
    seconds = run.result.seconds if hasattr(run, "result") else float("nan")
    print(f"trained {fam.name} ({getattr(cfg, 'variant', getattr(cfg, 'mode', ''))}) on {getattr(cfg, 'data', '?')} "
          f"for {cfg.iterations} iterations in {seconds:.0f} s")
    for extra in ("best_step", "heldout_dice"):
        if hasattr(run, extra):
            print(f"{extra}: {getattr(run, extra)}")
    print(f"weights: {run.weights}  (sha256 {run.card.sha256[:12]}...)")
    print(f"model card: {run.weights.with_suffix('.json')}")
    return 0
