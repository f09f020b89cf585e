import pytest
import torch

from synthaug.errors import ShapeError, ValidationError
from synthaug.networks import FeatureFusion


@pytest.mark.parametrize("dims", [2, 3])
def test_shapes_finite_and_gradients(dims):
    torch.manual_seed(0)
    fusion = FeatureFusion(3, 4, spatial_dims=dims, widths=(4, 8, 4))
    spatial = (16, 16) if dims == 2 else (8, 8, 8)
    x = torch.rand(2, 3, 4, *spatial, requires_grad=True)
    y = fusion(x)
    assert y.shape == (2, 4, *spatial)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert fusion.attention_logits.grad is not None and fusion.attention_logits.grad.abs().sum() > 0


def test_attention_weights_readable_and_pass_at_init():
    fusion = FeatureFusion(5, 3)
    w = fusion.attention_weights
    assert w.shape == (5,)
    assert torch.allclose(w, torch.ones(5))
    assert not w.requires_grad
    with torch.no_grad():
        fusion.attention_logits[2] = -30.0
    assert fusion.attention_weights[2] < 1e-6


def test_attention_gates_features():
    torch.manual_seed(0)
    fusion = FeatureFusion(2, 3, widths=(4,)).double()
    x = torch.rand(1, 2, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        fusion.attention_logits[1] = -1e3  # feature 1 switched off
    x2 = x.clone()
    x2[:, 1] = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    assert torch.allclose(fusion(x), fusion(x2))


def test_2d_mixes_labels_3d_does_not():
    torch.manual_seed(0)
    for dims, spatial in ((2, (8, 8)), (3, (4, 4, 4))):
        fusion = FeatureFusion(2, 3, spatial_dims=dims, widths=(4,)).double()
        x = torch.rand(1, 2, 3, *spatial, dtype=torch.float64)
        x2 = x.clone()
        x2[:, :, 0] += 1.0  # change label 0's features only
        diff = (fusion(x) - fusion(x2)).abs()
        assert diff[:, 0].max() > 0
        changed_others = diff[:, 1].max() > 0
        assert changed_others == (dims == 2)


def test_validation():
    with pytest.raises(ValidationError, match="spatial_dims"):
        FeatureFusion(2, 3, spatial_dims=1)
    with pytest.raises(ValidationError, match="n_features"):
        FeatureFusion(0, 3)
    fusion = FeatureFusion(2, 3)
    with pytest.raises(ShapeError, match="N_F=2"):
        fusion(torch.rand(1, 3, 3, 8, 8))
    with pytest.raises(ShapeError, match="N_L=3"):
        fusion(torch.rand(1, 2, 4, 8, 8))
