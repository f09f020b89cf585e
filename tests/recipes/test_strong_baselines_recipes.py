"""The shipped strong non-learned baselines (issue 14): ``synthseg.json`` and ``heavy_intensity.json``."""

from pathlib import Path

import pytest
import torch

import synthaug.recipes
from synthaug.integrations.nnunet.normalization import ChannelNormalization, intensity_for
from synthaug.recipes import BatchSynthesizer, load_recipe
from synthaug.recipes.batch import build_transform
from synthaug.transforms.heavy_intensity import HeavyIntensityAugment
from synthaug.transforms.labels_to_image import GaussianMixtureSynth

LIBRARY = Path(synthaug.recipes.__file__).parent / "library"
CT = ChannelNormalization("CTNormalization", {"mean": 60.0, "std": 110.0, "percentile_00_5": -980.0,
                                              "percentile_99_5": 600.0})
ZS = ChannelNormalization("ZScoreNormalization")
LABELS = {"background": 0, "liver": 1, "spleen": 2, "kidney": 3}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _batch(b=3, spatial=(24, 20, 8), seed=0):
    """CT-normalised data (air and tissue), int16 labels with -1 padding; the last sample has no foreground."""
    g = torch.Generator().manual_seed(seed)
    lab = torch.zeros((b, 1, *spatial), dtype=torch.int16)
    for i in range(b - 1):
        o = int(torch.randint(0, 4, (), generator=g))
        lab[i, :, 3 + o : 16 + o, 3:16] = 1
        lab[i, :, 5:9, 5:9] = 2
        lab[i, :, 14:18, 10 + o % 2 : 17] = 3
    lab[:, :, -3:] = -1
    hu = torch.tensor([-900.0, 60.0, 120.0, 200.0])[lab.clamp_min(0).long()] + 15 * torch.randn(lab.shape, generator=g)
    return (hu - 60.0) / 110.0, lab


def test_library_recipes_load_and_state_their_sources():
    synthseg = load_recipe(LIBRARY / "synthseg.json")
    (spec,) = synthseg.transforms
    assert spec.name == "gaussian_mixture" and spec.probability == 1.0
    assert spec.deform.enabled and spec.deform.control_points == 5 and spec.deform.max_displacement == 4.0
    t = build_transform(spec)
    assert isinstance(t, GaussianMixtureSynth) and t.prob == 1.0 and t.options.simulates_resolution
    o = t.options
    assert (o.mean_range, o.std_range, o.bias_strength, o.gamma_std) == ((0.0, 1.0), (0.0, 0.1373), 0.5, 0.4)
    resolution = (o.max_res_iso, o.max_res_aniso, o.prob_iso, o.prob_full_res, o.res_blur_range)
    assert resolution == (4.0, 8.0, 0.1, 0.05, 1.03)
    assert "Billot et al. 2023" in synthseg.description and "BBillot/SynthSeg" in synthseg.description

    heavy = load_recipe(LIBRARY / "heavy_intensity.json")
    (spec,) = heavy.transforms
    assert spec.name == "heavy_intensity" and spec.probability == 1.0 and not spec.deform.enabled
    t = build_transform(spec)
    assert isinstance(t, HeavyIntensityAugment) and t.options.standardize == "foreground"
    assert t.options.non_default() == {"standardize": "foreground"}  # every op at its published default
    assert "Molinier et al. 2026" in heavy.description and "neuropoly/SmaugLab" in heavy.description


@pytest.mark.parametrize("spatial", [(24, 20, 8), (28, 24)], ids=["3d", "2d"])
@pytest.mark.parametrize("name", ["synthseg", "heavy_intensity"])
def test_library_recipes_run_through_the_batch_synthesiser(name, spatial):
    data, lab = _batch(spatial=spatial)
    recipe = load_recipe(LIBRARY / f"{name}.json")
    synth = BatchSynthesizer(recipe, intensity=intensity_for(CT), dataset_labels=LABELS, seed=1)
    synth.prepare("cpu")  # no weights to load
    out = synth(data, lab, epoch=0)
    # p = 1 on every sample, the background-only one included (both render or alter background too)
    assert out.choice == [0, 0, 0] and out.accepted == [True, True, True]
    assert torch.isfinite(out.data).all() and out.data.dtype == data.dtype
    assert not (out.target[2] > 0).any()  # the background-only sample stays without foreground
    for j in range(2):
        assert not torch.allclose(out.data[j], data[j], atol=1e-3)
    if name == "heavy_intensity":
        assert torch.equal(out.target, lab)  # intensity only: the labels are never changed
    else:
        assert not torch.equal(out.target[:2], lab[:2])  # SynthSeg deforms the label map before synthesis
    again = BatchSynthesizer(recipe, intensity=intensity_for(CT), dataset_labels=LABELS, seed=1)(data, lab, epoch=0)
    assert torch.equal(again.data, out.data) and torch.equal(again.target, out.target)


def test_heavy_intensity_recipe_on_z_scored_data_keeps_each_sample_z_scored():
    data, lab = _batch(seed=3)
    recipe = load_recipe(LIBRARY / "heavy_intensity.json")
    out = BatchSynthesizer(recipe, intensity=intensity_for(ZS), seed=0)(data, lab, epoch=0)
    valid = lab >= 0
    for j in range(2):
        o, x = out.data[j][valid[j]], data[j][valid[j]]
        assert not torch.allclose(o, x, atol=1e-3)
        assert float(o.mean()) == pytest.approx(float(x.mean()), abs=1e-4)
        assert float(o.std(unbiased=False)) == pytest.approx(float(x.std(unbiased=False)), rel=1e-4)
