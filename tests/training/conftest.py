import pytest
import torch

import synthaug.training.translate_data as td
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
