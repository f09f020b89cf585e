import pytest
import torch

from synthaug.errors import ShapeError, ValidationError
from synthaug.networks import MultiScalePatchDiscriminator, PatchDiscriminator, SegmentationDiscriminator


@pytest.mark.parametrize("dims", [2, 3])
def test_patch_discriminator(dims):
    torch.manual_seed(0)
    d = PatchDiscriminator(2, spatial_dims=dims, width=4, n_layers=3)
    spatial = (32, 32) if dims == 2 else (16, 16, 16)
    x = torch.rand(2, 2, *spatial, requires_grad=True)
    y = d(x)
    assert y.shape == (2, 1, *(s // 8 for s in spatial))
    assert torch.isfinite(y).all()
    y.mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ShapeError, match=">= 16"):
        d(torch.rand(1, 2, *(8,) * dims))


@pytest.mark.parametrize("dims", [2, 3])
def test_multiscale_discriminator(dims):
    torch.manual_seed(0)
    d = MultiScalePatchDiscriminator(1, spatial_dims=dims, n_scales=3, width=4, n_layers=2)
    spatial = (64, 64) if dims == 2 else (32, 32, 32)
    out = d(torch.rand(1, 1, *spatial))
    assert isinstance(out, list) and len(out) == 3
    for i, o in enumerate(out):
        assert o.shape == (1, 1, *(s // 4 // 2**i for s in spatial))
        assert torch.isfinite(o).all()
    assert len({id(m) for m in d.discriminators}) == 3
    with pytest.raises(ShapeError, match="3 scales"):
        d(torch.rand(1, 1, *(16,) * dims))


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("spectral", [True, False])
def test_segmentation_discriminator(dims, spectral):
    torch.manual_seed(0)
    d = SegmentationDiscriminator(1, 5, spatial_dims=dims, widths=(4, 8, 8), spectral=spectral)
    spatial = (32, 32) if dims == 2 else (16, 16, 16)
    x = torch.rand(2, 1, *spatial, requires_grad=True)
    y = d(x)
    assert y.shape == (2, 5, *spatial)
    assert torch.isfinite(y).all()
    torch.nn.functional.cross_entropy(y, torch.zeros(2, *spatial, dtype=torch.long)).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ShapeError, match="divisible by 4"):
        d(torch.rand(1, 1, *(18,) * dims))


def test_validation_and_float64():
    with pytest.raises(ValidationError, match="spatial_dims"):
        PatchDiscriminator(1, spatial_dims=5)
    with pytest.raises(ValidationError, match="n_classes"):
        SegmentationDiscriminator(1, 1)
    with pytest.raises(ValidationError, match="norm"):
        PatchDiscriminator(1, norm="group")
    d = PatchDiscriminator(1, width=2, n_layers=2).double()
    assert d(torch.rand(1, 1, 16, 16, dtype=torch.float64)).dtype == torch.float64
