"""Appearance-randomised ConText training: batches, card ranges, evaluation under randomised appearance."""


import numpy as np
import pytest
import torch

from synthaug.appearance.remap import AppearanceRanges
from synthaug.cli.main import main
from synthaug.errors import ValidationError
from synthaug.training.eval_dr import appearance_ranges_of, evaluate_appearance_control
from synthaug.training.train_context import ContextConfig, appearance_batches, randomised_slices
from synthaug.weights.store import read_card
from tests.training.conftest import synthetic_slices, toy_raw_dataset


@pytest.fixture
def raw_dataset(tmp_path):
    return toy_raw_dataset(tmp_path / "Dataset901_ToyDR", background=-150.0)


def test_appearance_batches_remap_targets_keep_labels_and_replay():
    slices = synthetic_slices()
    sample = appearance_batches(slices, batch_size=4, n_labels=3, prob=1.0, ranges=AppearanceRanges())
    a_img, a_lab = sample(torch.Generator().manual_seed(3))
    b_img, b_lab = sample(torch.Generator().manual_seed(3))
    assert torch.equal(a_img, b_img) and torch.equal(a_lab, b_lab)
    idx = torch.randint(len(slices), (4,), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a_lab, slices.labels[idx])  # labels are the real ones, untouched
    assert not torch.allclose(a_img, slices.images[idx]) and a_img.abs().max() <= 1
    off = appearance_batches(slices, batch_size=4, n_labels=3, prob=0.0, ranges=AppearanceRanges())
    c_img, _ = off(torch.Generator().manual_seed(3))
    assert torch.equal(c_img, slices.images[idx])
    wide = randomised_slices(slices, n_labels=3, ranges=AppearanceRanges(), draws=3, seed=0)
    assert len(wide) == 3 * len(slices) and torch.equal(wide.labels[: len(slices)], slices.labels)


def test_config_validates_the_appearance_options():
    cfg = ContextConfig(appearance_prob=0.8, appearance={"mean_range": [-0.5, 0.5]})
    assert cfg.appearance_ranges.mean_range == (-0.5, 0.5)
    with pytest.raises(ValidationError, match="unknown appearance option"):
        ContextConfig(appearance={"mean_rnge": [0, 1]})
    with pytest.raises(ValidationError, match="appearance_prob"):
        ContextConfig(appearance_prob=1.5)
    with pytest.raises(ValidationError, match="appearance_stats_draws"):
        ContextConfig(appearance_stats_draws=0)


@pytest.mark.slow
def test_train_with_randomised_targets_card_ranges_and_evaluation(raw_dataset, tmp_path):
    common = ["iterations=3", "batch_size=2", "size=32", "widths=[4,8]", "fusion_widths=[4]", "d_width=4",
              "sample_every=3", f"data={raw_dataset}"]
    plain, dr = tmp_path / "plain", tmp_path / "dr"
    assert main(["train", "context", "--quiet", "--out", str(plain), "--set", "name=plain", *common]) == 0
    assert main(["train", "context", "--quiet", "--out", str(dr), "--set", "name=dr", "appearance_prob=1.0",
                 "appearance={\"mean_range\":[-0.9,0.9]}", *common]) == 0
    card_plain, card_dr = read_card(plain / "plain.safetensors"), read_card(dr / "dr.safetensors")
    assert card_dr.training["config"]["appearance_prob"] == 1.0
    assert appearance_ranges_of(card_dr).mean_range == (-0.9, 0.9)
    assert card_dr.training_cases == card_plain.training_cases  # same training cases, only targets remapped
    assert card_dr.appearance_randomised and not card_plain.appearance_randomised
    width = lambda c: np.array(c.features.stats.max) - np.array(c.features.stats.min)  # noqa: E731
    assert width(card_dr)[1:, 0].min() > width(card_plain)[1:, 0].max()  # mean ranges span the randomised range
    row = evaluate_appearance_control(dr / "dr.safetensors", draws=2)
    assert row["heldout_cases"] == ["Dataset901_ToyDR:toy_003"]
    r = row["randomised"]
    assert set(r["by_kind"]) == {"increasing", "decreasing", "non_monotone"}
    assert sum(b["n"] for b in r["by_requested_mean"]) == sum(k["n"] for k in r["by_kind"].values())
    assert 0 <= r["controllability"][0] <= 100 and r["controllability_calibrated"][0] <= r["controllability"][0]
    assert 0 <= r["ssim_vs_target"][0] <= 1
    same = evaluate_appearance_control(plain / "plain.safetensors", draws=2, ranges=appearance_ranges_of(card_dr),
                                       stats=card_dr.features.stats)
    assert same["ranges"] == row["ranges"]
    # The randomisation options are part of the run's identity: a different one in the same folder is refused.
    assert main(["train", "context", "--quiet", "--out", str(dr), "--set", "name=dr", "appearance_prob=0.5",
                 *common]) == 2
