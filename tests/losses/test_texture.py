"""Texture-control loss: zero when equal, drives texture, ignores absent regions, validates inputs."""

from __future__ import annotations

import pytest
import torch

from synthaug.errors import ShapeError, ValidationError
from synthaug.features import (
    FeatureSpec,
    normalise_features,
    region_features,
    register_feature,
    unregister_feature,
)
from synthaug.losses.texture import TextureControlLoss, texture_control_loss


def case(shape=(2, 12, 12), n_labels=4, *, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, n_labels - 1, shape, generator=g)  # region n_labels-1 is absent
    image = torch.rand(shape[0], 1, *shape[1:], generator=g, dtype=dtype) * 2 - 1
    return image, labels


@pytest.mark.parametrize("shape", [(2, 12, 12), (1, 5, 6, 7)], ids=["2d", "3d"])
def test_zero_for_identical_positive_otherwise(shape):
    image, labels = case(shape)
    assert texture_control_loss(image, image.clone(), labels, n_labels=4).item() == 0.0
    other = (image * 0.5 + 0.2).requires_grad_()
    loss = texture_control_loss(
        other, image, labels, n_labels=4, names=("mean", "std", "entropy", "gradient")
    )
    assert loss.ndim == 0 and loss.item() > 0
    loss.backward()
    assert torch.isfinite(other.grad).all() and other.grad.abs().sum() > 0


def test_equals_normalised_mean_abs_difference_over_present_regions():
    image, labels = case(seed=1)
    fake = (image.flip(-1) * 0.7).requires_grad_()
    labels[1][labels[1] == 1] = 0  # region 1 absent in sample 1 only
    opts = {"n_labels": 4, "names": ("mean", "entropy"), "bins": 8}
    got = region_features(fake, labels, soft=True, **opts)
    want = region_features(image, labels, soft=True, **opts)
    diff = (got.normalised() - want.normalised()).abs() / 100  # (B, N_F, N_L)
    present = got.present.unsqueeze(1).expand_as(diff)
    expected = diff[present].mean()
    torch.testing.assert_close(texture_control_loss(fake, image, labels, **opts), expected)
    raw = (got.values - want.values).abs()[present].mean()
    torch.testing.assert_close(texture_control_loss(fake, image, labels, normalise=False, **opts), raw)


def test_target_features_and_absent_regions():
    image, labels = case(seed=2)
    opts = {"n_labels": 4, "names": ("mean", "entropy"), "bins": 16}
    measured = region_features(image, labels, soft=True, **opts).values
    assert texture_control_loss(image, measured, labels, **opts).item() == 0.0
    garbage = measured.clone()
    garbage[:, :, 3] = 1e6  # region 3 is absent: its target must not matter
    assert texture_control_loss(image, garbage, labels, **opts).item() == 0.0
    shifted = measured.clone()
    shifted[:, 0, 0] += 0.4  # mean of region 0 off by 0.4 = 20 % of value_range width
    expected = 0.2 / (2 * 3)  # one of N_F * present (2 * 3) entries per sample differs by 0.2
    torch.testing.assert_close(texture_control_loss(image, shifted, labels, **opts), torch.tensor(expected))


def test_gradient_descent_drives_mean_and_entropy_towards_target():
    g = torch.Generator().manual_seed(0)
    labels = torch.zeros(1, 16, 16, dtype=torch.long)
    labels[:, :, 8:] = 1
    x = (torch.randn(1, 1, 16, 16, generator=g) * 0.05).requires_grad_()
    target = torch.tensor([[[-0.5, 0.4, 0.0], [3.0, 1.0, 0.0]]])  # (B, mean/entropy, N_L); region 2 absent
    loss_fn = TextureControlLoss(n_labels=3, names=("mean", "entropy"), bins=16)
    opts = {"n_labels": 3, "names": ("mean", "entropy"), "bins": 16, "soft": True}
    before = (region_features(x.detach(), labels, **opts).values - target).abs()[..., :2]
    optimiser = torch.optim.Adam([x], lr=0.05)
    losses = []
    for _ in range(30):
        optimiser.zero_grad()
        loss = loss_fn(x, target, labels)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    after = (region_features(x.detach(), labels, **opts).values - target).abs()[..., :2]
    assert losses[-1] < 0.4 * losses[0], losses
    assert (after < before).all(), (before, after)  # every feature of every present region moved closer
    assert after[0, 1].max() < 0.5 * before[0, 1].max()  # entropy (texture) error at least halved


def test_module_matches_function_and_dtype_follows_input():
    image, labels = case(seed=3, dtype=torch.float64)
    fake = image.roll(3, -1)
    module = TextureControlLoss(n_labels=4, names=("mean", "std"), bins=8, bandwidth=0.1, normalise=False)
    out = module(fake, image, labels)
    assert out.dtype == torch.float64
    ref = texture_control_loss(
        fake, image, labels, n_labels=4, names=("mean", "std"), bins=8, bandwidth=0.1, normalise=False
    )
    torch.testing.assert_close(out, ref)
    assert "names=('mean', 'std')" in repr(module)
    if torch.cuda.is_available():
        assert module(fake.cuda(), image.cuda(), labels.cuda()).device.type == "cuda"


def test_real_image_is_a_constant():
    image, labels = case(seed=4)
    real = image.clone().requires_grad_()
    fake = (image * 0.3).requires_grad_()
    texture_control_loss(fake, real, labels, n_labels=4).backward()
    assert real.grad is None and fake.grad is not None


@pytest.fixture
def not_differentiable():
    register_feature(FeatureSpec("hard_only", lambda s: s.mean, False, (-1.0, 1.0)))
    yield "hard_only"
    unregister_feature("hard_only")


def test_errors(not_differentiable):
    image, labels = case(seed=5)
    with pytest.raises(ValidationError, match=r"differentiable.*\['hard_only'\]"):
        texture_control_loss(image, image, labels, n_labels=4, names=("mean", not_differentiable))
    with pytest.raises(ValidationError, match=r"\['hard_only'\]"):
        TextureControlLoss(n_labels=4, names=(not_differentiable,))
    with pytest.raises(ValidationError, match="Did you mean 'entropy'"):
        TextureControlLoss(n_labels=4, names=("entropie",))
    with pytest.raises(ValidationError, match="n_labels"):
        TextureControlLoss(n_labels=0)
    with pytest.raises(ShapeError, match=r"\(B, N_F, N_L\) = \(2, 2, 4\)"):
        texture_control_loss(image, torch.zeros(2, 2, 3), labels, n_labels=4)
    with pytest.raises(ValidationError, match="NaN"):
        texture_control_loss(image, torch.full((2, 2, 4), float("nan")), labels, n_labels=4)
    with pytest.raises(ShapeError, match="target image must have the shape of fake"):
        texture_control_loss(image, image[:, :, :5], labels, n_labels=4)
    with pytest.raises(ValidationError, match="target must be a floating-point"):
        texture_control_loss(image, labels, labels, n_labels=4)
    bad = labels.clone()
    bad[0, 0, 0] = 9
    with pytest.raises(ValidationError, match=r"\[9\].*n_labels=4"):
        texture_control_loss(image, image, bad, n_labels=4)


def test_normalise_features_consistency_with_loss_scale():
    # the normalised loss is the 0..100 error divided by 100: a full-range mean error gives 1 / N_F
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    low, high = torch.full((1, 1, 4, 4), -1.0), torch.full((1, 1, 4, 4), 1.0)
    loss = texture_control_loss(low, high, labels, n_labels=1, names=("mean", "entropy"))
    assert loss.item() == pytest.approx(0.5)
    values = torch.tensor([[[-1.0], [0.0]]])
    assert normalise_features(values, ("mean", "entropy")).tolist() == [[[0.0], [0.0]]]
