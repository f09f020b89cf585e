import pytest
import torch

from synthaug.errors import ShapeError, ValidationError
from synthaug.networks import ResNetGenerator


@pytest.mark.parametrize("dims", [2, 3])
def test_shapes_finite_and_gradients(dims):
    torch.manual_seed(0)
    g = ResNetGenerator(1, 2, spatial_dims=dims, width=4, n_downsample=2, n_blocks=2)
    spatial = (32, 32) if dims == 2 else (16, 16, 16)
    x = torch.rand(2, 1, *spatial, requires_grad=True)
    y = g(x)
    assert y.shape == (2, 2, *spatial)
    assert torch.isfinite(y).all() and y.abs().max() <= 1.0
    y.mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in g.parameters())


def test_tiny_input_falls_back_from_reflect_and_float64():
    g = ResNetGenerator(width=2, n_downsample=2, n_blocks=1, norm="none", output="linear").double()
    y = g(torch.rand(1, 1, 4, 4, dtype=torch.float64))  # bottleneck 1x1: replicate padding
    assert y.shape == (1, 1, 4, 4) and y.dtype == torch.float64


def test_validation():
    g = ResNetGenerator(width=2, n_blocks=1)
    with pytest.raises(ShapeError, match="divisible by 4"):
        g(torch.rand(1, 1, 30, 32))
    with pytest.raises(ValidationError, match="spatial_dims"):
        ResNetGenerator(spatial_dims=1)
    with pytest.raises(ValidationError, match="n_blocks"):
        ResNetGenerator(n_blocks=-1)
