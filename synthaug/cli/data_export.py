"""``synthaug data export-nnunet`` and ``synthaug data simulate-mr`` (thin wrappers over synthaug.data).

``register(data_subparsers)`` is called by the ``synthaug data`` command with its sub-parsers action.
Library failures raise :class:`synthaug.errors.SynthAugError`; ``synthaug.cli.main`` prints them as one line.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(data_subparsers: Any) -> None:
    """Add ``export-nnunet`` and ``simulate-mr`` to the ``synthaug data`` sub-parsers."""
    p = data_subparsers.add_parser(
        "export-nnunet",
        help="write a scenario as an nnU-Net v2 raw dataset (DatasetXXX_Name)",
        description="Export a benchmark scenario (see synthaug.data.scenarios) as an nnU-Net v2 raw dataset. "
        "Labels are TotalSegmentator model predictions, not manual ground truth.",
    )
    p.add_argument("--scenario", required=True, help="cross-modality, cross-scanner or in-domain")
    p.add_argument("--out", required=True, type=Path, help="nnU-Net raw folder (nnUNet_raw)")
    p.add_argument(
        "--dataset-id", required=True, type=int, help="nnU-Net dataset id, 1..999, not yet used in --out"
    )
    p.add_argument("--name", default=None, help="dataset name (default SynthAug<Scenario>)")
    p.add_argument(
        "--slab-slices", type=int, default=16, help="training slab thickness in slices (default 16)"
    )
    p.add_argument(
        "--label-space",
        choices=("superclass", "shared"),
        default="superclass",
        help="label vocabulary (default superclass)",
    )
    p.set_defaults(func=_export_nnunet)

    s = data_subparsers.add_parser(
        "simulate-mr",
        help="write simulated paired T1w/T2w/PDw brain MR subjects (NIfTI) from the MNI tissue maps",
        description="Simulate spin-echo brain MR subjects from the MNI152 2009 tissue maps (simulated, "
        "not real patient data) and write <out>/<subject>/{T1w,T2w,PDw,label}.nii.gz plus simulation.json.",
    )
    s.add_argument("--out", required=True, type=Path, help="output folder (must not exist)")
    s.add_argument("--subjects", required=True, type=int, help="number of simulated subjects")
    s.add_argument("--seed", required=True, type=int, help="random seed (same seed, same images)")
    s.add_argument("--spacing", type=float, default=2.0, help="isotropic voxel size in mm (default 2)")
    s.add_argument("--no-deform", action="store_true", help="keep the MNI anatomy (no elastic deformation)")
    s.set_defaults(func=_simulate_mr)


def _export_nnunet(args: argparse.Namespace) -> int:
    from synthaug.data.nnunet_export import dataset_folder_name, export_nnunet
    from synthaug.data.scenarios import get_scenario

    dataset_folder_name(args.dataset_id, args.name or "SynthAug")  # fail fast, before loading subjects
    scenario = get_scenario(args.scenario, slab_slices=args.slab_slices, label_space=args.label_space)
    folder = export_nnunet(scenario, args.out, dataset_id=args.dataset_id, name=args.name)
    print(folder)
    return 0


def _simulate_mr(args: argparse.Namespace) -> int:
    from synthaug.data.mr_simulator import simulate_subjects, write_simulated_mr
    from synthaug.data.subjects import load_mni_tissue_maps

    sims = simulate_subjects(
        load_mni_tissue_maps(),
        n=args.subjects,
        seed=args.seed,
        spacing=args.spacing,
        deform=not args.no_deform,
    )
    print(write_simulated_mr(sims, args.out))
    return 0
