"""``synthaug nnunet-path`` and ``synthaug expand`` (thin wrappers over synthaug.integrations.nnunet).

``nnunet-path`` prints the folder to put in ``nnUNet_extTrainer`` so ``nnUNetv2_train`` / ``nnUNetv2_predict``
find ``-tr nnUNetTrainerSynthAug``. ``expand`` writes an expanded copy of an nnU-Net raw dataset; it runs
unchanged under ``torchrun --nproc_per_node N -m synthaug.cli.main expand ...`` (ranks shard the cases).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "nnunet-path",
        help="print the folder for nnU-Net's nnUNet_extTrainer variable (finds -tr nnUNetTrainerSynthAug)",
        description="Print the folder holding nnUNetTrainerSynthAug.py. Use: "
        "export nnUNet_extTrainer=$(synthaug nnunet-path)",
    )
    p.set_defaults(func=_path)

    e = subparsers.add_parser(
        "expand",
        help="write an nnU-Net raw dataset plus N synthetic copies of each training case",
        description="Copy an nnU-Net v2 raw dataset and add --per-case synthetic cases per training case "
        "(<case>_synthaug<k>), with provenance manifests, an updated dataset.json, a splits_final.json that keeps "
        "synthetic cases in their source case's training folds, and a preview PNG. Resumable; never overwrites. "
        "Under torchrun the ranks share the cases.",
    )
    e.add_argument("--dataset", required=True, type=Path, help="source nnU-Net raw dataset folder (DatasetXXX_Name)")
    e.add_argument("--out", required=True, type=Path, help="new dataset folder DatasetYYY_Name (must not exist)")
    e.add_argument("--recipe", required=True, type=Path, help="recipe file (JSON, or YAML with PyYAML)")
    e.add_argument("--per-case", required=True, type=int, help="synthetic cases per training case (>= 1)")
    e.add_argument("--seed", type=int, default=0, help="global seed (default 0); same seed, same dataset")
    e.add_argument("--device", default=None, help="torch device for the generators (default: GPU if present)")
    e.add_argument("--no-preview", action="store_true", help="do not write synthaug_preview.png")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=_expand)


def _path(args: argparse.Namespace) -> int:
    from synthaug.integrations.nnunet import trainer_folder

    print(trainer_folder())
    return 0


def _expand(args: argparse.Namespace) -> int:
    from synthaug.recipes.expand import expand_dataset

    out = expand_dataset(
        args.dataset,
        args.out,
        recipe=args.recipe,
        per_case=args.per_case,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
        preview=not args.no_preview,
    )
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        print(out)
    return 0
