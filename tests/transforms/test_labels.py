"""The shared image/label batch check every label-reading transform runs first."""

import pytest
import torch

from synthaug.errors import LabelError, ShapeError
from synthaug.transforms import (
    ContextTextureSynth,
    GaussianMixtureSynth,
    HeavyIntensityAugment,
    SimulatedMRSynth,
)
from synthaug.transforms.labels import check_image_label_batch

NAMES = {"background": 0, "liver": 1, "spleen": 2, "kidneys": 3, "gastrointestinal": 4, "cardiovascular": 5,
         "bone": 6, "muscle": 7, "other_organs": 8}


def _batch(b: int) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.zeros(b, 1, 16, 16, 3, dtype=torch.int64)
    labels[..., 2:10, 2:10, :] = 1
    labels[..., 10:14, 2:8, :] = 6
    return torch.randn(b, 1, 16, 16, 3) * 100 - 300, labels


def test_valid_batch_comes_back_as_int64():
    images, labels = _batch(2)
    out = check_image_label_batch(images, labels.to(torch.int16))
    assert out.dtype == torch.int64 and torch.equal(out, labels)


def test_one_label_map_per_image():
    images, labels = _batch(2)
    with pytest.raises(ShapeError, match="different numbers of samples; give one label map per image"):
        check_image_label_batch(images, labels[:1])


def test_empty_and_non_integer_label_maps_are_named():
    images, labels = _batch(2)
    labels[1] = 0
    with pytest.raises(LabelError, match=r"sample\(s\) \[1\] is empty"):
        check_image_label_batch(images, labels)
    assert check_image_label_batch(images, labels, allow_empty=True).shape == labels.shape
    with pytest.raises(LabelError, match="non-integer"):
        check_image_label_batch(images, labels.float() + 0.5)


@pytest.mark.parametrize("make", [
    lambda: ContextTextureSynth("context_ct_a", label_names=NAMES, deform=True),
    lambda: GaussianMixtureSynth(),
    lambda: HeavyIntensityAugment(),
    lambda: SimulatedMRSynth(label_names=NAMES),
], ids=["context", "gaussian_mixture", "heavy_intensity", "simulated_mr"])
def test_every_label_reading_transform_refuses_a_batch_mismatch_before_any_work(make):
    """Found by probing the array forms: one label map for two images ended in torch's own RuntimeError or
    IndexError deep inside (grid_sample, torch.cat) instead of a message naming the problem."""
    images, labels = _batch(2)
    with pytest.raises(ShapeError, match="give one label map per image"):
        make().apply_batch(images, labels[:1], seeds=[0, 1])
