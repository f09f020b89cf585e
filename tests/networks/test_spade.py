import math

import pytest
import torch

from synthaug.errors import ShapeError, ValidationError
from synthaug.networks import SPADE, SPADEGenerator, SPADEResBlock, truncated_normal


def _gen(dims: int, **kw) -> SPADEGenerator:
    torch.manual_seed(0)
    return SPADEGenerator(3, 1, spatial_dims=dims, widths=(8, 8, 4), z_dim=4, hidden=8, **kw)


def _seed(s: int) -> torch.Generator:
    return torch.Generator().manual_seed(s)


@pytest.mark.parametrize("dims", [2, 3])
def test_spade_modulates_with_resized_condition(dims):
    torch.manual_seed(0)
    spade = SPADE(4, 5, spatial_dims=dims, hidden=8)
    spatial = (8,) * dims
    x = torch.randn(2, 4, *spatial)
    cond = torch.rand(2, 5, *(16,) * dims)  # finer than x: resized with nearest
    y = spade(x, cond)
    assert y.shape == x.shape and torch.isfinite(y).all()
    # with gamma = beta = 0 SPADE is a parameter-free instance norm
    with torch.no_grad():
        for m in (spade.gamma, spade.beta):
            m.weight.zero_()
            m.bias.zero_()
    y0 = spade(x, cond)
    axes = tuple(range(2, 2 + dims))
    assert torch.allclose(y0.mean(axes), torch.zeros(2, 4), atol=1e-5)
    assert sum(p.numel() for p in spade.norm.parameters()) == 0


@pytest.mark.parametrize("dims", [2, 3])
def test_resblock_shapes(dims):
    blk = SPADEResBlock(6, 3, 2, spatial_dims=dims, hidden=4)
    x = torch.randn(1, 6, *(8,) * dims)
    assert blk(x, torch.rand(1, 2, *(8,) * dims)).shape == (1, 3, *(8,) * dims)
    same = SPADEResBlock(3, 3, 2, spatial_dims=dims, hidden=4)
    assert same.conv_s is None


@pytest.mark.parametrize("dims", [2, 3])
def test_generator_shapes_finite_and_gradients(dims):
    g = _gen(dims)
    spatial = (32, 32) if dims == 2 else (8, 8, 8)
    cond = torch.rand(2, 3, *spatial, requires_grad=True)
    y = g(cond, generator=_seed(0))
    assert y.shape == (2, 1, *spatial)
    assert torch.isfinite(y).all() and y.abs().max() <= 1.0
    y.mean().backward()
    assert torch.isfinite(cond.grad).all() and cond.grad.abs().sum() > 0
    assert all(p.grad is not None for p in g.parameters())


def test_same_seed_same_output_different_noise_different_output():
    g = _gen(2)
    cond = torch.rand(2, 3, 16, 16)
    a = g(cond, generator=_seed(7))
    b = g(cond, generator=_seed(7))
    c = g(cond, generator=_seed(8))
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-4
    n1, n2 = torch.randn(2, 4, generator=_seed(1)), torch.randn(2, 4, generator=_seed(2))
    assert (g(cond, noise=n1) - g(cond, noise=n2)).abs().max() > 1e-4
    # drawn noise equals the explicit noise drawn from the same seed
    assert torch.allclose(g(cond, noise=torch.randn(2, 4, generator=_seed(7))), a)


def test_spatial_noise_and_float64():
    g = _gen(2).double()
    cond = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    noise = g.sample_noise(1, spatial=(16, 16), generator=_seed(0), dtype=torch.float64)
    assert noise.shape == (1, 4, 16, 16)
    y = g(cond, noise=noise)
    assert y.dtype == torch.float64 and y.shape == (1, 1, 16, 16)
    with pytest.raises(ShapeError, match="noise"):
        g(cond, noise=torch.randn(1, 5, dtype=torch.float64))


def test_truncation_bound_respected_and_seeded():
    z = truncated_normal((200_000,), 0.5, generator=_seed(0))
    assert z.abs().max() <= 0.5 and z.abs().max() > 0.49
    # truncated normal on [-0.5, 0.5] has variance 1 - 2 a phi(a) / (2 Phi(a) - 1)
    a = 0.5
    phi = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    var = 1 - 2 * a * phi / math.erf(a / math.sqrt(2))
    assert abs(float(z.var()) - var) < 2e-3
    assert abs(float(z.mean())) < 5e-3
    assert torch.equal(
        truncated_normal((5,), 1.0, generator=_seed(3)), truncated_normal((5,), 1.0, generator=_seed(3))
    )
    big = truncated_normal((1000,), 40.0, generator=_seed(0))
    assert torch.isfinite(big).all()
    with pytest.raises(ValidationError, match="truncation"):
        truncated_normal((3,), 0.0)

    g = _gen(2)
    cond = torch.rand(1, 3, 16, 16)
    noise = g.sample_noise(64, generator=_seed(1), truncation=0.1)
    assert noise.abs().max() <= 0.1
    y = g(cond, generator=_seed(1), truncation=0.1)
    assert torch.equal(y, g(cond, generator=_seed(1), truncation=0.1))
    with pytest.raises(ValidationError, match="truncation"):
        g(cond, noise=torch.zeros(1, 4), truncation=1.0)


def test_generator_validation():
    g = _gen(2)
    with pytest.raises(ShapeError, match="divisible by 4"):
        g(torch.rand(1, 3, 18, 16))
    with pytest.raises(ShapeError, match="3 channel"):
        g(torch.rand(1, 2, 16, 16))
    with pytest.raises(ShapeError, match="too small"):
        g(torch.rand(1, 3, 4, 4))
    with pytest.raises(ValidationError, match="spatial_dims"):
        SPADEGenerator(3, spatial_dims=4)
    with pytest.raises(ValidationError, match="z_dim"):
        SPADEGenerator(3, z_dim=-1)


def test_deterministic_without_noise_channels():
    torch.manual_seed(0)
    g = SPADEGenerator(2, widths=(4, 4), z_dim=0, hidden=4)
    cond = torch.rand(1, 2, 8, 8)
    assert torch.equal(g(cond, generator=_seed(0)), g(cond, generator=_seed(1)))
    with pytest.raises(ValidationError, match="z_dim=0"):
        g(cond, noise=torch.zeros(1, 0))
