import pytest
import torch

from synthaug.errors import ValidationError, WeightsError
from synthaug.intensity import IntensityConvention
from synthaug.training import train_segmenter as ts
from synthaug.training.loop import LoopConfig, run_training
from synthaug.training.train_segmenter import (
    SegmenterConfig,
    SegmenterData,
    SegmenterStep,
    build_segmenter,
    dice_per_class,
    load_segmenter,
    segment,
)
from tests.training.conftest import synthetic_slices


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_dice_per_class_matches_hand_computation():
    pred = torch.tensor([[0, 1, 1, 2], [0, 0, 1, 2]])
    target = torch.tensor([[0, 1, 2, 2], [0, 1, 1, 0]])
    dice, present = dice_per_class(pred, target, 4)
    # class 1: pred 3 px, target 3 px, overlap 2 -> 4/6; class 2: pred 2, target 2, overlap 1 -> 0.5
    assert dice[1].item() == pytest.approx(4 / 6) and dice[2].item() == pytest.approx(0.5)
    assert present.tolist() == [True, True, True, False] and dice[3].item() == 1.0


def test_smoke_training_lowers_the_loss_and_segments(tmp_path):
    slices = synthetic_slices(16, 32)
    torch.manual_seed(0)
    net, args = build_segmenter(3, (8, 16))
    assert args["spectral"] is False and args["n_classes"] == 3
    step = SegmenterStep(net, lr=3e-3, jitter=0.05)
    loop = LoopConfig(iterations=40, batch_size=8, seed=0, log_every=5, checkpoint_every=40, progress=False)
    result = run_training(step, lambda g: slices.sample(8, generator=g), loop=loop, out_dir=tmp_path, config={})
    assert result.mean_loss("loss", first=False) < 0.7 * result.mean_loss("loss", first=True)
    net.eval()
    pred = segment(net, slices.images, batch_size=5)
    assert pred.shape == slices.labels.shape
    dice, _ = dice_per_class(pred, slices.labels, 3)
    assert float(dice[1:].mean()) > 0.5  # the synthetic regions are easy


def test_train_segmenter_exports_a_loadable_card(tmp_path, monkeypatch):
    train, held = synthetic_slices(12, 32, seed=0), synthetic_slices(4, 32, seed=1)
    data = SegmenterData("ct_a", train, held, ("background", "a", "b"), IntensityConvention.ct_window(-200, 300), "CT",
                         ("synA_z000-011",), ("synA_z020-023",), "synthetic")
    monkeypatch.setattr(ts, "segmenter_data", lambda name, size=128: data)
    cfg = SegmenterConfig(name="tiny_seg", size=32, widths=(4, 8), iterations=3, batch_size=4, checkpoint_every=3,
                          sample_every=3)
    run = ts.train_segmenter(cfg, tmp_path, progress=False)
    assert run.card.family == "segmenter" and run.card.architecture == "segmentation_unet"
    assert run.card.training_cases == ("synA_z000-011",) and "heldout_dice" in run.card.metrics
    assert (tmp_path / "samples").is_dir() and "mean" in run.heldout_dice
    net, card = load_segmenter(run.weights)
    assert card.sha256 == run.card.sha256 and not any(p.requires_grad for p in net.parameters())
    assert segment(net, held.images).shape == held.labels.shape


def test_load_segmenter_refuses_other_families(tmp_path):
    from synthaug.networks.style import StyleSwapGenerator
    from synthaug.weights.card import ModelCard
    from synthaug.weights.store import save_weights

    args = {"n_labels": 3, "style_dim": 4, "encoder_widths": [4], "widths": [4, 4], "z_dim": 0, "hidden": 4}
    card = ModelCard(name="not_seg", family="style", architecture="style_swap_generator", arguments=args,
                     spatial_dims=2, in_channels=3, out_channels=1,
                     intensity=IntensityConvention.ct_window().to_dict(), labels=("background", "a", "b"))
    stored = save_weights(StyleSwapGenerator(**args), card, tmp_path / "not_seg.safetensors")
    (tmp_path / "not_seg.json").write_text(stored.to_json())
    with pytest.raises(WeightsError, match="not a 'segmenter'"):
        load_segmenter(tmp_path / "not_seg.safetensors")


def test_config_validation():
    with pytest.raises(ValidationError, match="data"):
        SegmenterConfig(data="mr_c_lower")
    with pytest.raises(ValidationError, match="divisible"):
        SegmenterConfig(size=100)
    with pytest.raises(ValidationError, match="jitter"):
        SegmenterConfig(jitter=1.5)
