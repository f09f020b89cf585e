import json

import numpy as np
import pytest
import torch

import synthaug.training.translate_data as td
from synthaug.data.nnunet_export import write_nifti
from synthaug.training.slices import SliceSet


def synthetic_slices(n: int = 16, size: int = 32, seed: int = 0) -> SliceSet:
    """Label maps of random rectangles; each region has its own mean and noise level."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):  # test data only
        for lab in (1, 2):
            y, x = torch.randint(0, size // 2, (2,), generator=g).tolist()
            h, w = torch.randint(size // 4, size // 2, (2,), generator=g).tolist()
            labels[i, y : y + h, x : x + w] = lab
    means = torch.tensor([-0.8, 0.0, 0.6])
    noise = torch.tensor([0.02, 0.15, 0.05])
    images = means[labels] + noise[labels] * torch.randn(labels.shape, generator=g)
    return SliceSet(images[:, None].clamp(-1, 1), labels, ["synthetic"] * n, list(range(n)))


def toy_raw_dataset(root, *, background: float):
    """A 4-case nnU-Net raw CT dataset (organ 40 HU, lesion 200 HU, ``background`` elsewhere; noise SD 15)."""
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        lab = np.zeros((32, 32, 6), np.uint8)
        lab[4 + i : 20 + i, 6:24] = 1
        lab[10:16, 10 + i : 18 + i] = 2
        img = np.array([background, 40.0, 200.0])[lab] + rng.normal(0, 15, lab.shape)
        write_nifti(root / "imagesTr" / f"toy_{i:03d}_0000.nii.gz", img.astype(np.float32), np.eye(4))
        write_nifti(root / "labelsTr" / f"toy_{i:03d}.nii.gz", lab, np.eye(4))
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "organ": 1, "lesion": 2},
        "numTraining": 4, "file_ending": ".nii.gz"}))
    return root


@pytest.fixture
def slices():
    return synthetic_slices()


@pytest.fixture
def phantom_simulator(monkeypatch):
    """The simulator on a 24^3 phantom at 2 mm instead of the MNI maps (same code path, seconds)."""
    from tests.data.test_mr_simulator import make_phantom

    phantom = make_phantom(24, 2.0)
    monkeypatch.setattr(td, "_tissue_maps", lambda: phantom)
    monkeypatch.setattr(td, "_CACHE", {})
    td._simulated.cache_clear()
    yield phantom
    td._simulated.cache_clear()
