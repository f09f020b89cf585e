"""Every registered transform name builds from a recipe and runs ``apply_batch`` on a tiny nnU-Net batch."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from synthaug.errors import DataError, LeakageError, ValidationError
from synthaug.integrations.nnunet.normalization import ChannelNormalization, intensity_for
from synthaug.recipes import recipe as R
from synthaug.recipes.batch import BatchSynthesizer, build_transform
from synthaug.transforms.modality_translate import ModalityTranslate
from synthaug.transforms.style_swap import StyleSwap
from synthaug.weights import registry
from tests.transforms.test_style_swap import make_tiny_style_registry, volume

CT_PROPS = {"mean": 60.0, "std": 110.0, "percentile_00_5": -150.0, "percentile_99_5": 280.0}
ZS = ChannelNormalization("ZScoreNormalization", CT_PROPS)
CT = ChannelNormalization("CTNormalization", CT_PROPS)
LABELS = {"background": 0, "a": 1, "b": 2, "c": 3}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny_style_weights(tmp_path, monkeypatch):
    (tmp_path / "weights").mkdir()
    yield make_tiny_style_registry(tmp_path / "weights", monkeypatch)
    registry.clear_cache()


def _write_bank(folder, roles=None):
    folder.mkdir()
    for i, (seed, hu) in enumerate(((1, (20.0, 200.0, 60.0)), (2, (150.0, -50.0, 0.0)))):
        img, lab = volume(seed=seed, organ_hu=hu)
        nib.save(nib.Nifti1Image(img[0].numpy().astype(np.float32), np.eye(4)), folder / f"ctA_z00{i}-003_image.nii.gz")
        nib.save(nib.Nifti1Image(lab[0].numpy().astype(np.int16), np.eye(4)), folder / f"ctA_z00{i}-003_label.nii.gz")
    if roles:
        (folder / "roles.json").write_text(json.dumps(roles))
    return folder


def _recipe(name, options, p=1.0):
    return R.Recipe.from_dict({"transforms": [{"name": name, "probability": p, "options": options}]})


def _batch(b=2, spatial=(20, 18, 4), seed=0):
    """nnU-Net-like z-scored data and int16 labels (B, 1, *spatial)."""
    g = torch.Generator().manual_seed(seed)
    lab = torch.zeros((b, 1, *spatial), dtype=torch.int16)
    lab[:, :, 4:10, 4:9] = 1
    lab[:, :, 11:15, 5:9] = 2
    lab[:, :, 6:12, 10:14] = 3
    data = torch.randn((b, 1, *spatial), generator=g) * 0.3 + lab.float() * 0.5
    return data, lab


def test_every_transform_is_registered():
    assert {"context_texture", "style_swap", "modality_translate"} <= set(R.transform_names())


def test_modality_translate_recipe_builds_and_runs_on_a_batch():
    recipe = _recipe("modality_translate", {"weights": "translate_brain_pd_t2_resgan", "source": "PDw",
                                            "target": "T2w", "overlap": 0.25, "chunk": 4})
    t = build_transform(recipe.transforms[0], dataset_labels=LABELS, slice_axis=2)
    assert isinstance(t, ModalityTranslate) and t.prob == 1.0 and t.overlap == 0.25
    data, lab = _batch()
    out, out_lab = t.apply_batch(data.float(), lab.long(), seeds=[1, 2])
    assert out.shape == data.shape and torch.isfinite(out).all() and torch.equal(out_lab, lab.long())
    synth = BatchSynthesizer(recipe, intensity=intensity_for(ZS), dataset_labels=LABELS, seed=0)
    res = synth(data, lab, epoch=0)
    assert res.choice == [0, 0] and res.accepted == [True, True]
    assert torch.equal(res.target, lab) and not torch.equal(res.data, data)
    # z-scored data stays z-scored (nnU-Net's per-image normalisation re-applied to the translation)
    torch.testing.assert_close(res.data.mean(dim=(1, 2, 3, 4)), data.mean(dim=(1, 2, 3, 4)), atol=1e-4, rtol=0)


def test_modality_translate_recipe_errors(tmp_path):
    with pytest.raises(ValidationError, match="no option 'sorce'.*Did you mean 'source'"):
        _recipe("modality_translate", {"weights": "translate_brain_pd_t2_resgan", "sorce": "PDw"})
    with pytest.raises(ValidationError, match="'prob' is set by the recipe itself"):
        _recipe("modality_translate", {"prob": 0.5})
    bad = _recipe("modality_translate", {"weights": "translate_brain_pd_t2_resgan", "source": "CT", "target": "T2w"})
    with pytest.raises(ValidationError, match="translate PDw -> T2w: source='CT'"):
        BatchSynthesizer(bad, intensity=intensity_for(ZS), dataset_labels=LABELS)


def test_style_swap_recipe_with_a_bank_folder_builds_and_runs_on_a_batch(tiny_style_weights, tmp_path):
    folder = _write_bank(tmp_path / "bank")
    recipe = _recipe("style_swap", {"weights": "tiny_style", "bank": str(folder), "test_cases": ["ctA_z096-111"],
                                    "truncation": 1.0})
    t = build_transform(recipe.transforms[0], dataset_labels=LABELS, slice_axis=2)
    assert isinstance(t, StyleSwap) and t.bank.ids == ("ctA_z000-003", "ctA_z001-003") and not t.deform
    img, lab = volume()
    out, out_lab = t.apply_batch(torch.stack([img, img]), torch.stack([lab, lab]), seeds=[3, 4])
    assert out.shape == (2, *img.shape) and torch.equal(out_lab[0], lab)
    data, blab = _batch()
    res = BatchSynthesizer(recipe, intensity=intensity_for(CT), dataset_labels=LABELS, seed=1)(data, blab, epoch=0)
    assert res.choice == [0, 0] and torch.equal(res.target, blab) and not torch.equal(res.data, data)
    none = build_transform(_recipe("style_swap", {"weights": "tiny_style"}).transforms[0])
    assert none.bank is None


def test_ct_window_synthesis_keeps_real_air_in_the_nnunet_batch(tiny_style_weights):
    """A CT-window generator saturates at its floor (-200 HU); the batch keeps the real air (-990 HU)."""
    props = {"mean": 60.0, "std": 110.0, "percentile_00_5": -990.0, "percentile_99_5": 900.0}
    ct = ChannelNormalization("CTNormalization", props)
    data, lab = _batch()
    air = (-990.0 - 60.0) / 110.0
    data[:, :, :3] = air  # three rows of air outside the body, as nnU-Net's CTNormalization stores it
    res = BatchSynthesizer(_recipe("style_swap", {"weights": "tiny_style"}), intensity=intensity_for(ct),
                           dataset_labels=LABELS, seed=1)(data, lab, epoch=0)
    assert res.choice == [0, 0] and not torch.equal(res.data, data)
    torch.testing.assert_close(res.data[:, :, :3], data[:, :, :3])
    off = BatchSynthesizer(_recipe("style_swap", {"weights": "tiny_style", "keep_outside_window": False}),
                           intensity=intensity_for(ct), dataset_labels=LABELS, seed=1)(data, lab, epoch=0)
    assert off.data[:, :, :3].min() >= (-200.0 - 60.0) / 110.0 - 1e-4  # the generator's floor, not air


def test_style_swap_recipe_bank_errors(tiny_style_weights, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        build_transform(_recipe("style_swap", {"weights": "tiny_style", "bank": str(tmp_path / "nope")}).transforms[0])
    with pytest.raises(ValidationError, match="folder path"):
        build_transform(_recipe("style_swap", {"weights": "tiny_style", "bank": 3}).transforms[0])
    folder = _write_bank(tmp_path / "bank", roles={"ctA_z001-003": "test"})
    with pytest.raises(LeakageError, match="marked as test"):
        build_transform(_recipe("style_swap", {"weights": "tiny_style", "bank": str(folder)}).transforms[0])
    with pytest.raises(ValidationError, match="no option 'bank_folder'.*Did you mean 'bank'"):
        _recipe("style_swap", {"weights": "tiny_style", "bank_folder": "x"})
