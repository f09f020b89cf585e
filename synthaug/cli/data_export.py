"""``synthaug data export-nnunet``, ``simulate-mr`` and ``label-ceiling`` (thin wrappers over synthaug.data).

``register(data_subparsers)`` is called by the ``synthaug data`` command with its sub-parsers action.
Library failures raise :class:`synthaug.errors.SynthAugError`; ``synthaug.cli.main`` prints them as one line.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

from synthaug.data.scenario_names import LABEL_SPACES, scenario_names

__all__ = ["register"]


def register(data_subparsers: Any) -> None:
    """Add ``export-nnunet``, ``simulate-mr`` and ``label-ceiling`` to the ``synthaug data`` sub-parsers."""
    p = data_subparsers.add_parser(
        "export-nnunet",
        help="write a scenario as an nnU-Net v2 raw dataset (DatasetXXX_Name)",
        description="Export a benchmark scenario (see synthaug.data.scenarios) as an nnU-Net v2 raw dataset. "
        "Labels are TotalSegmentator model predictions (spine-cross-modality: the TPTBox test masks), not manual "
        "ground truth.",
    )
    p.add_argument("--scenario", required=True, help=f"built-in scenario: {', '.join(scenario_names())}")
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
        choices=LABEL_SPACES,
        default=None,
        help="label vocabulary (default: the scenario's own, superclass or spine)",
    )
    p.set_defaults(func=_export_nnunet)

    c = data_subparsers.add_parser(
        "label-ceiling",
        help="label-noise ceiling: Dice between TotalSegmentator 2.10.0 and 2.18.0 labels on a scenario's test slabs",
        description="Per-class and mean Dice between the TotalSegmentator 2.10.0 and 2.18.0 labels of the same images, "
        "on the slabs and classes the benchmark scores (synthaug.data.label_noise). Scenarios whose labels exist in "
        "one version only (spine-cross-modality) are reported as not available.",
    )
    c.add_argument("--scenario", required=True, nargs="+", help=f"one or more of: {', '.join(scenario_names())}")
    c.add_argument("--slab-slices", type=int, default=16, help="slab thickness in slices, as exported (default 16)")
    c.add_argument("--out", type=Path, default=None, help="write the ceilings as JSON (command, date, machine, commit)")
    c.add_argument("--markdown", type=Path, default=None, help="also write a Markdown results page")
    c.add_argument("--cache-dir", type=Path, default=None, help="cache root (default: $SYNTHAUG_CACHE)")
    c.set_defaults(func=_label_ceiling)

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


def _git_commit() -> str:
    """The commit the code runs from (``<sha>-dirty`` with uncommitted changes to tracked files; ``unknown``)."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=30)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=root, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return sha.stdout.strip() + ("-dirty" if dirty.returncode != 0 else "")


def _ceiling_command(args: argparse.Namespace) -> str:
    """The command line equivalent to ``args`` (recorded in the results; independent of how it was called)."""
    parts = ["synthaug", "data", "label-ceiling", "--scenario", *args.scenario]
    if args.slab_slices != 16:
        parts += ["--slab-slices", str(args.slab_slices)]
    for flag, value in (("--out", args.out), ("--markdown", args.markdown), ("--cache-dir", args.cache_dir)):
        if value is not None:
            parts += [flag, str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def _label_ceiling(args: argparse.Namespace) -> int:
    from synthaug.data.label_noise import ceiling_markdown, label_noise_ceiling, release_agreement
    from synthaug.data.scenarios import get_scenario
    from synthaug.data.subjects import TOTALSEG_SUBJECTS, load_subject
    from synthaug.training.provenance import machine_line, today

    def load(name: str) -> Any:
        return load_subject(name, cache_dir=args.cache_dir)

    command = _ceiling_command(args)
    commit = _git_commit()
    ceilings = []
    for name in dict.fromkeys(args.scenario):
        scenario = get_scenario(name, slab_slices=args.slab_slices, loader=load)
        ceiling = label_noise_ceiling(scenario, cache_dir=args.cache_dir)
        ceilings.append(ceiling)
        if not ceiling.available:
            print(f"{name}: label-noise ceiling {ceiling.reason}")
            continue
        for g in ceiling.groups:
            mean = "n/a" if g.mean is None else f"{g.mean:.3f}"
            per = ", ".join(f"{k} {'n/a' if v is None else f'{v:.3f}'}" for k, v in g.per_class.items())
            same = " (identical labels: trivial)" if g.identical else ""
            print(f"{name} / {g.group} ({g.role}): mean Dice {mean}{same}; {per}")
    native = [release_agreement(s, cache_dir=args.cache_dir) for s in TOTALSEG_SUBJECTS]
    for a in native:
        print(f"whole volume {a.case}, native classes: mean Dice {a.mean:.3f}" + (" (identical)" if a.identical else ""))
    provenance = {"command": command, "date": today(), "machine": machine_line(), "git_commit": commit}
    if args.out is not None:
        payload = {
            **provenance,
            "scenarios": [c.to_dict() for c in ceilings],
            "whole_volume_native": [a.to_dict() for a in native],
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
        print(args.out)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(
            ceiling_markdown(
                ceilings, native, command=command, date=provenance["date"], machine=provenance["machine"], commit=commit
            )
        )
        print(args.markdown)
    return 0
