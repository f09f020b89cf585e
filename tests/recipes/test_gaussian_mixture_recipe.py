"""The generator-free Gaussian-mixture baseline through the nnU-Net recipe and the batch synthesiser."""

import json

import pytest
import torch

from synthaug.errors import ValidationError
from synthaug.integrations.nnunet.normalization import ChannelNormalization, intensity_for, nnunet_targets
from synthaug.recipes import recipe as R
from synthaug.recipes.batch import BatchSynthesizer, build_transform
from synthaug.transforms.labels_to_image import GaussianMixtureSynth

CT_PROPS = {"mean": 60.0, "std": 110.0, "percentile_00_5": -150.0, "percentile_99_5": 280.0}
CT = ChannelNormalization("CTNormalization", CT_PROPS)
ZS = ChannelNormalization("ZScoreNormalization")
LABELS = {"background": 0, "liver": 1, "spleen": 2, "kidney": 3}
RECIPE = {"transforms": [{"name": "gaussian_mixture", "probability": 1.0}]}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _batch(b=3, spatial=(20, 18, 6), seed=0):
    """nnU-Net-like normalised data, int16 labels with -1 padding; the last sample has no foreground."""
    g = torch.Generator().manual_seed(seed)
    lab = torch.zeros((b, 1, *spatial), dtype=torch.int16)
    for i in range(b - 1):
        o = int(torch.randint(0, 4, (), generator=g))
        lab[i, :, 3 + o : 14 + o, 3:14] = 1
        lab[i, :, 5:9, 5:9] = 2
        lab[i, :, 12:16, 10 + o % 2 : 15] = 3
    lab[..., -3:, :] = -1
    data = torch.randn((b, 1, *spatial), generator=g) * 0.5 + lab.clamp_min(0).float() * 0.4
    return data, lab


def test_recipe_builds_a_card_less_transform(tmp_path):
    path = tmp_path / "gmm.json"
    path.write_text(json.dumps({**RECIPE, "transforms": [{**RECIPE["transforms"][0],
                                                          "options": {"sigma_range": [0.0, 0.5], "gamma_std": 0.1}}]}))
    recipe = R.load_recipe(path)
    assert "gaussian_mixture" in R.transform_names()
    t = build_transform(recipe.transforms[0], dataset_labels=LABELS, slice_axis=2)
    assert isinstance(t, GaussianMixtureSynth) and t.card is None and t.prob == 1.0
    assert t.sigma_range == (0.0, 0.5) and t.gamma_std == 0.1
    with pytest.raises(ValidationError, match="no option 'sigma'.*Did you mean 'sigma_range'"):
        R.Recipe.from_dict({"transforms": [{"name": "gaussian_mixture", "options": {"sigma": [0, 1]}}]})
    with pytest.raises(ValidationError, match="'prob' is set by the recipe itself"):
        R.Recipe.from_dict({"transforms": [{"name": "gaussian_mixture", "options": {"prob": 0.5}}]})


def test_zscore_batch_every_sample_synthesised_and_re_z_scored():
    data, lab = _batch()
    synth = BatchSynthesizer(R.Recipe.from_dict(RECIPE), intensity=intensity_for(ZS), dataset_labels=LABELS, seed=0)
    synth.prepare("cpu")  # nothing to load: no weights
    out = synth(data, lab, epoch=0)
    # the mixture renders background too, so the background-only sample 2 is synthesised as well (as SynthSeg does)
    assert out.choice == [0, 0, 0] and out.accepted == [True, True, True]
    assert torch.equal(out.target, lab) and not torch.equal(out.data[2], data[2])
    valid = lab >= 0
    assert torch.equal(out.data[~valid], data[~valid])  # padding keeps its real values
    for j in range(2):
        m = valid[j]
        o, x = out.data[j][m], data[j][m]
        assert not torch.allclose(o, x)
        assert float(o.mean()) == pytest.approx(float(x.mean()), abs=1e-4)
        assert float(o.std(unbiased=False)) == pytest.approx(float(x.std(unbiased=False)), abs=1e-4)
    stats = synth.pop_epoch_stats()
    assert stats["synthetic_fraction"] == pytest.approx(1.0) and stats["acceptance_rate"] == 1.0


def test_ct_batch_matches_the_transform_in_hounsfield_units():
    data, lab = _batch(seed=1)
    synth = BatchSynthesizer(R.Recipe.from_dict(RECIPE), intensity=intensity_for(CT), dataset_labels=LABELS, seed=2)
    out = synth(data, lab, epoch=0)
    assert out.choice == [0, 0, 0]
    valid = lab >= 0
    gen = torch.where(valid, lab, torch.zeros_like(lab)).long()
    raw = data * CT_PROPS["std"] + CT_PROPS["mean"]
    y, _ = GaussianMixtureSynth().apply_batch(raw[:2], gen[:2], seeds=out.seeds[:2])
    # the synthetic image spans the real patch's HU range, then nnU-Net's CT normalisation applies
    assert torch.allclose(y.flatten(1).amin(1), raw[:2].flatten(1).amin(1))
    y = (y.clamp(CT_PROPS["percentile_00_5"], CT_PROPS["percentile_99_5"]) - CT_PROPS["mean"]) / CT_PROPS["std"]
    ref = torch.where(valid[:2], y, data[:2])
    torch.testing.assert_close(out.data[:2], ref, atol=1e-5, rtol=1e-5)
    assert torch.equal(out.target, lab)


def test_deep_supervision_list_targets_with_deformation():
    data, lab = _batch(spatial=(24, 20, 8))
    scales = [[1.0, 1.0, 1.0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]]
    target = nnunet_targets(lab, ds_scales=scales)
    recipe = R.Recipe.from_dict({"transforms": [{**RECIPE["transforms"][0],
                                                 "deform": {"enabled": True, "control_points": 3, "max_displacement": 3.0}}]})
    out = BatchSynthesizer(recipe, intensity=intensity_for(CT), seed=0)(data, target, epoch=0)
    assert out.choice == [0, 0, 0] and isinstance(out.target, list) and len(out.target) == 3
    full = out.target[0]
    assert not torch.equal(full[:2], lab[:2])  # the labels were deformed
    expected = nnunet_targets(full, ds_scales=scales)
    for k in range(3):
        assert out.target[k].shape == target[k].shape
        assert torch.equal(out.target[k], expected[k]), f"level {k}"
    assert not (out.target[0][2] > 0).any()  # the background-only sample stays without foreground
    assert torch.isfinite(out.data).all() and not torch.equal(out.data, data)
