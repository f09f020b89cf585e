"""``synthaug predict``: segment new images with a model the downstream benchmark trained."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "predict", help="segment NIfTI images with the nnU-Net model of one benchmark run (arm x seed)",
        description="Finds the run of --arm/--seed in a `synthaug benchmark downstream` work folder, reorients each "
        "input to the training orientation (RAS) and back, checks it against the training domain (spacing, modality, "
        "per-class intensities such as contrast-enhanced vessels) and writes the label map in the input's own grid, "
        "with a <name>_synthaug_check.json of the checks beside it.")
    p.add_argument("--work", required=True, type=Path, help="the benchmark work folder")
    p.add_argument("--arm", required=True, help="arm name (e.g. default, context, synthseg)")
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("-i", "--input", required=True, nargs="+", type=Path, help="NIfTI image(s), one channel")
    p.add_argument("-o", "--out", required=True, type=Path, help="output folder")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_predict)


def _predict(args: argparse.Namespace) -> int:
    from synthaug.benchmark.predict import predict

    checks = predict(args.work, args.arm, args.seed, args.input, args.out, device=args.device)
    for c in checks:
        print(f"{c.output}  ({len(c.warnings)} warning(s); checks in {Path(c.output).name.split('.')[0]}_synthaug_check.json)")
    return 0
