import pytest
import torch

from synthaug.errors import ShapeError, ValidationError
from synthaug.networks import UNetGenerator


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("upsample", ["transpose", "resize"])
def test_shapes_finite_and_gradients(dims, upsample):
    torch.manual_seed(0)
    g = UNetGenerator(3, 2, spatial_dims=dims, widths=(4, 8, 8), upsample=upsample)
    spatial = (32, 32) if dims == 2 else (16, 16, 16)
    x = torch.rand(2, 3, *spatial, requires_grad=True)
    y = g(x)
    assert y.shape == (2, 2, *spatial)
    assert torch.isfinite(y).all() and y.abs().max() <= 1.0
    y.mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in g.parameters())


def test_float64_and_linear_output():
    g = UNetGenerator(1, 1, widths=(4, 8), output="linear").double()
    y = g(torch.rand(1, 1, 16, 16, dtype=torch.float64))
    assert y.dtype == torch.float64


def test_divisibility_error():
    g = UNetGenerator(1, widths=(4, 8, 8))
    with pytest.raises(ShapeError, match=r"divisible by 8.*Pad the input to \(24, 32\)"):
        g(torch.rand(1, 1, 20, 32))


def test_input_checks():
    g = UNetGenerator(2, widths=(4,))
    with pytest.raises(ShapeError, match="2 channel"):
        g(torch.rand(1, 1, 8, 8))
    with pytest.raises(ShapeError, match="spatial_dims=2"):
        g(torch.rand(1, 2, 8, 8, 8))
    with pytest.raises(ValidationError, match="output"):
        UNetGenerator(1, output="relu")
    with pytest.raises(ValidationError, match="norm"):
        UNetGenerator(1, norm="layer")
    with pytest.raises(ValidationError, match="dropout"):
        UNetGenerator(1, dropout=1.5)


def _zero_final(g: UNetGenerator) -> None:
    with torch.no_grad():
        for p in g.final.parameters():
            p.zero_()


@pytest.mark.parametrize("dims", [2, 3])
def test_residual_zeroed_last_layer_returns_input(dims):
    spatial = (16, 16) if dims == 2 else (8, 8, 8)
    x = torch.randn(2, 1, *spatial)
    g = UNetGenerator(1, 1, spatial_dims=dims, widths=(4, 8), residual=True, output="linear")
    _zero_final(g)
    assert torch.allclose(g(x), x)
    g_tanh = UNetGenerator(1, 1, spatial_dims=dims, widths=(4, 8), residual=True)
    _zero_final(g_tanh)
    assert torch.allclose(g_tanh(x), torch.tanh(x))


def test_residual_channel_rules():
    x = torch.randn(1, 3, 16, 16)
    g1 = UNetGenerator(3, 1, widths=(4, 8), residual=True, output="linear")  # channel 0
    _zero_final(g1)
    assert torch.allclose(g1(x), x[:, :1])
    g3 = UNetGenerator(3, 3, widths=(4, 8), residual=True, output="linear")  # identity
    _zero_final(g3)
    assert torch.allclose(g3(x), x)
    g2 = UNetGenerator(3, 2, widths=(4, 8), residual=True, output="linear")  # 1x1 projection
    _zero_final(g2)
    assert g2.skip is not None
    assert torch.allclose(g2(x), g2.skip(x))
    no_res = UNetGenerator(1, 1, widths=(4, 8), output="linear")
    _zero_final(no_res)
    assert torch.allclose(no_res(x[:, :1]), torch.zeros(1, 1, 16, 16))


def test_dropout_uses_the_generator():
    torch.manual_seed(0)
    g = UNetGenerator(1, widths=(4, 8, 8), dropout=0.5)
    x = torch.rand(1, 1, 16, 16)
    a = g(x, generator=torch.Generator().manual_seed(1))
    b = g(x, generator=torch.Generator().manual_seed(1))
    c = g(x, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    g.eval()
    assert torch.equal(
        g(x, generator=torch.Generator().manual_seed(1)), g(x, generator=torch.Generator().manual_seed(2))
    )
