import pytest
import torch
from torch import nn

from synthaug.errors import ShapeError, ValidationError
from synthaug.networks.layers import (
    Pad,
    avg_pool,
    check_divisible,
    check_spatial_dims,
    conv,
    conv_transpose,
    max_pool,
    norm_layer,
    output_activation,
)


@pytest.mark.parametrize("bad", [1, 4, 0, "2", 2.0, True])
def test_spatial_dims_rejected(bad):
    with pytest.raises(ValidationError, match="spatial_dims"):
        check_spatial_dims(bad)


def test_factories_pick_the_dimension():
    assert conv(2) is nn.Conv2d and conv(3) is nn.Conv3d
    assert conv_transpose(2) is nn.ConvTranspose2d and conv_transpose(3) is nn.ConvTranspose3d
    assert avg_pool(3) is nn.AvgPool3d and max_pool(2) is nn.MaxPool2d
    assert isinstance(norm_layer("instance", 3, 4), nn.InstanceNorm3d)
    assert isinstance(norm_layer("batch", 2, 4), nn.BatchNorm2d)
    assert isinstance(norm_layer("none", 2, 4), nn.Identity)
    assert norm_layer("instance", 2, 4, affine=False).weight is None
    with pytest.raises(ValidationError, match="instance"):
        norm_layer("instanse", 2, 4)
    with pytest.raises(ValidationError, match="output"):
        output_activation("sigmoid")


def test_pad_reflects_and_falls_back():
    x = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 4, 4).contiguous()
    y = Pad(1)(x)
    assert y.shape == (1, 1, 6, 6)
    assert y[0, 0, 1, 0] == 1.0  # reflect: the neighbour of column 0 is column 1
    tiny = torch.rand(1, 1, 2, 2, 2)
    assert Pad(3)(tiny).shape == (1, 1, 8, 8, 8)  # too small to reflect: replicate


def test_check_divisible_message():
    with pytest.raises(ShapeError, match=r"divisible by 16.*\(32, 32\)"):
        check_divisible(torch.zeros(1, 1, 30, 32), "x", 16)
