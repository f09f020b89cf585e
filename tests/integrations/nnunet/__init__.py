"""Tests of synthaug.integrations.nnunet, with a tiny nnU-Net raw dataset builder shared by them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

LABELS = {"background": 0, "a": 1, "b": 2, "c": 3}  # the tiny generators' vocabulary (tests/transforms/conftest)


def phantom_case(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(HU image float32, uint8 label) with three blobs whose positions depend on ``seed``."""
    rng = np.random.default_rng(seed)
    lab = np.zeros(shape, dtype=np.uint8)
    grids = np.meshgrid(*[np.arange(s) for s in shape[:2]], indexing="ij")
    for cls, radius in ((1, 0.32), (2, 0.16), (3, 0.12)):
        cx, cy = (rng.uniform(0.3, 0.7, size=2) * np.array(shape[:2])).tolist()
        r = radius * min(shape[:2])
        disk = (grids[0] - cx) ** 2 + (grids[1] - cy) ** 2 <= r * r
        if len(shape) == 3:
            disk = np.repeat(disk[..., None], shape[2], axis=2)
        lab[disk] = cls
    img = np.array([-100.0, 40.0, 120.0, 250.0], dtype=np.float32)[lab]
    img = img + rng.normal(0, 15, size=shape).astype(np.float32)
    return img.astype(np.float32), lab


def make_raw_dataset(
    root: Path,
    *,
    dataset_id: int = 901,
    name: str = "Tiny",
    n_train: int = 6,
    n_test: int = 2,
    shape: tuple[int, ...] = (32, 32, 1),
    channel: str = "CT",
    scenario_cases: list[dict] | None = None,
    prefix: str = "case",
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> Path:
    """An nnU-Net v2 raw dataset folder ``root/DatasetXXX_Name`` (NIfTI, ``spacing`` mm voxels)."""
    from synthaug.data.nnunet_export import write_nifti

    folder = Path(root) / f"Dataset{dataset_id:03d}_{name}"
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (folder / sub).mkdir(parents=True)
    affine = np.diag([*map(float, spacing), 1.0])
    for i in range(n_train + n_test):
        kind = "Tr" if i < n_train else "Ts"
        case = f"{prefix}_{i:03d}"
        img, lab = phantom_case(shape, seed=i)
        write_nifti(folder / f"images{kind}" / f"{case}_0000.nii.gz", img, affine)
        write_nifti(folder / f"labels{kind}" / f"{case}.nii.gz", lab, affine)
    meta = {
        "channel_names": {"0": channel},
        "labels": dict(LABELS),
        "numTraining": n_train,
        "file_ending": ".nii.gz",
        "name": folder.name,
    }
    if scenario_cases is not None:
        meta["synthaug"] = {"scenario": "test", "cases": scenario_cases}
    (folder / "dataset.json").write_text(json.dumps(meta, indent=2))
    return folder


def write_recipe(path: Path, weights: str = "tiny_ct", probability: float = 1.0, deform: bool = True, **extra) -> Path:
    recipe = {
        "transforms": [
            {"name": "context_texture", "probability": probability,
             "deform": {"enabled": deform, "control_points": 3, "max_displacement": 2.0},
             "options": {"weights": weights, "features": "perturb", "perturbation": 0.1}}
        ],
        **extra,
    }
    path.write_text(json.dumps(recipe, indent=2))
    return path
