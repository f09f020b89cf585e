import pytest
import torch

from synthaug.networks.context import ContextGenerator
from synthaug.training.context import ContextStep, measure_features
from synthaug.training.loop import LoopConfig, run_training


@pytest.mark.parametrize("variant", ["p2p", "p2pf", "oasis"])
def test_smoke_training_lowers_the_loss(tmp_path, slices, variant):
    torch.manual_seed(0)
    g = ContextGenerator(3, 2, variant=variant, widths=(8, 16), fusion_widths=(4,), z_dim=4, spade_hidden=8)
    step = ContextStep(g, features=("mean", "entropy"), bins=16, d_width=8, lr_g=2e-3, lr_d=2e-4)
    loop = LoopConfig(iterations=60, batch_size=8, seed=0, log_every=5, checkpoint_every=60, progress=False)
    result = run_training(step, lambda gen: slices.sample(8, generator=gen), loop=loop, out_dir=tmp_path, config={})
    # The reconstruction-side losses must fall (the adversarial term need not).
    key = "ssim" if variant == "oasis" else "l1"
    assert result.mean_loss(key, first=False) < 0.8 * result.mean_loss(key, first=True)
    assert result.mean_loss("ct", first=False) < result.mean_loss("ct", first=True)


def test_measure_features_is_normalised(slices):
    v, present = measure_features(slices.images[:4], slices.labels[:4], n_labels=3, names=("mean", "entropy"), bins=16)
    assert v.shape == (4, 2, 3) and present.shape == (4, 3)
    assert v.min() >= 0 and v.max() <= 1
    # region 2 is brighter than region 1 in the synthetic data
    assert bool((v[:, 0, 2] > v[:, 0, 1]).all())
