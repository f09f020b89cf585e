"""Sliding-window and slice-wise whole-volume inference."""

import math

import pytest
import torch

from synthaug.errors import ShapeError, ValidationError
from synthaug.inference import patch_starts, patch_weight, slice_inference, sliding_window_inference

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.75, 0.9])
@pytest.mark.parametrize("shape", [(1, 1, 20, 23, 17), (2, 3, 9, 16, 31), (1, 1, 37, 29)])
def test_identity_network_reconstructs_the_input_exactly(shape, overlap):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    y = sliding_window_inference(x, lambda p: p, patch_size=8, overlap=overlap, batch_size=5)
    assert y.dtype == x.dtype and y.device == x.device
    assert torch.equal(y, x)


@pytest.mark.parametrize("stride", [1, 3, 8])
def test_constant_offset_network_and_explicit_strides(stride):
    x = torch.rand(1, 1, 19, 21, 10, generator=torch.Generator().manual_seed(1))
    y = sliding_window_inference(x, lambda p: p + 0.25, patch_size=(8, 8, 8), stride=stride)
    assert torch.equal(y, x + 0.25)


def test_volume_smaller_than_the_patch_is_padded_and_cropped_back():
    x = torch.rand(1, 1, 5, 12, 7, generator=torch.Generator().manual_seed(2))
    for mode in ("replicate", "constant"):
        assert torch.equal(sliding_window_inference(x, lambda p: p * 2, patch_size=8, pad_mode=mode), x * 2)


def test_gaussian_weighting_averages_patch_disagreements_towards_centres():
    x = torch.zeros(1, 1, 24, 24)

    def centre_marker(p):  # each patch reports +1 in its central half, -1 at its border
        out = -torch.ones_like(p)
        out[..., 4:12, 4:12] = 1.0
        return out

    uni = sliding_window_inference(x, centre_marker, patch_size=16, overlap=0.5, weighting="uniform")
    gau = sliding_window_inference(x, centre_marker, patch_size=16, overlap=0.5, weighting="gaussian")
    inner = (slice(None), slice(None), slice(4, 20), slice(4, 20))
    assert gau[inner].mean() > uni[inner].mean()  # patch centres win where patches disagree
    # a network that agrees everywhere gives the same result under both weightings
    torch.testing.assert_close(sliding_window_inference(x + 3, lambda p: p, patch_size=16, weighting="gaussian"), x + 3)


def test_patches_are_batched_and_every_voxel_is_covered():
    calls = []

    def net(p):
        calls.append(p.shape[0])
        return torch.ones_like(p)

    x = torch.zeros(2, 1, 30, 30, 30)
    y = sliding_window_inference(x, net, patch_size=16, overlap=0.5, batch_size=6)
    starts = patch_starts(30, 16, 8)
    assert starts == [0, 8, 14]
    assert sum(calls) == 2 * len(starts) ** 3 and max(calls) <= 6
    assert torch.equal(y, torch.ones_like(x))


def test_output_channels_may_differ_from_input_channels():
    x = torch.rand(1, 2, 12, 12)
    y = sliding_window_inference(x, lambda p: p.sum(1, keepdim=True).repeat(1, 3, 1, 1), patch_size=8)
    torch.testing.assert_close(y, x.sum(1, keepdim=True).repeat(1, 3, 1, 1))


def test_patch_weight_shapes():
    w = patch_weight((8, 6), "gaussian")
    assert w.shape == (8, 6) and math.isclose(float(w.max()), 1.0, rel_tol=1e-6) and float(w.min()) > 0
    assert torch.equal(patch_weight((4, 4, 4)), torch.ones(4, 4, 4))


def test_bad_inputs_give_clear_errors():
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(ShapeError, match="B, C"):
        sliding_window_inference(torch.rand(16, 16), lambda p: p, patch_size=8)
    bad = x.clone()
    bad[0, 0, 3, 3] = float("nan")
    with pytest.raises(ValidationError, match="NaN"):
        sliding_window_inference(bad, lambda p: p, patch_size=8)
    with pytest.raises(ValidationError, match="stride"):
        sliding_window_inference(x, lambda p: p, patch_size=8, stride=9)
    with pytest.raises(ValidationError, match="patch_size"):
        sliding_window_inference(x, lambda p: p, patch_size=(8, 8, 8))
    with pytest.raises(ValidationError, match="overlap"):
        sliding_window_inference(x, lambda p: p, patch_size=8, overlap=1.0)
    with pytest.raises(ShapeError, match="same spatial size"):
        sliding_window_inference(x, lambda p: p[..., :4, :4], patch_size=8)
    with pytest.raises(ValidationError, match="floating"):
        sliding_window_inference(torch.ones(1, 1, 8, 8, dtype=torch.long), lambda p: p, patch_size=4)
    with pytest.raises(ValidationError, match="weighting"):
        sliding_window_inference(x, lambda p: p, patch_size=8, weighting="cosine")


def test_slice_inference_pads_to_the_network_rule_and_crops_back():
    v = torch.rand(2, 1, 10, 13, 6, generator=torch.Generator().manual_seed(3))
    seen = []

    def net(s):
        seen.append(tuple(s.shape[2:]))
        return s * 2

    for axis in (0, 1, 2, -1):
        assert torch.equal(slice_inference(v, net, axis=axis, multiple=8, min_size=16, batch_size=4), v * 2)
    assert all(h % 8 == 0 and w % 8 == 0 and h >= 16 and w >= 16 for h, w in seen)
    with pytest.raises(ShapeError, match="X, Y, Z"):
        slice_inference(v[0], net)
