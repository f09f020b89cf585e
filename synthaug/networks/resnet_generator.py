"""CycleGAN / NEC-style ResNet generator for (unpaired) image-to-image translation.

7x7 stem -> ``n_downsample`` stride-2 3x3 convolutions (width doubling) -> ``n_blocks`` residual
blocks -> ``n_downsample`` stride-2 transposed convolutions -> 7x7 output convolution. Padding
before the 7x7 and residual 3x3 convolutions reflects (in 2D and 3D), falling back to replicate
on feature maps too small to reflect.

>>> import torch
>>> g = ResNetGenerator(spatial_dims=2, width=8, n_blocks=2)
>>> g(torch.zeros(1, 1, 16, 16)).shape
torch.Size([1, 1, 16, 16])
"""

from __future__ import annotations

import torch
from torch import nn

from synthaug._validate import check_choice
from synthaug.networks.interface import GeneratorModule
from synthaug.networks.layers import (
    Pad,
    check_divisible,
    check_input,
    check_int,
    check_spatial_dims,
    conv,
    conv_transpose,
    norm_layer,
    output_activation,
)

__all__ = ["ResNetGenerator", "ResidualBlock"]


class ResidualBlock(nn.Module):
    """``x + [pad, conv3, norm, ReLU, pad, conv3, norm](x)`` with reflect padding."""

    def __init__(self, channels: int, *, spatial_dims: int, norm: str = "instance") -> None:
        super().__init__()
        dims = check_spatial_dims(spatial_dims)
        Conv = conv(dims)
        self.body = nn.Sequential(
            Pad(1),
            Conv(channels, channels, kernel_size=3),
            norm_layer(norm, dims, channels),
            nn.ReLU(),
            Pad(1),
            Conv(channels, channels, kernel_size=3),
            norm_layer(norm, dims, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNetGenerator(GeneratorModule):
    """ResNet translation generator ``(B, in_channels, *S) -> (B, out_channels, *S)``.

    Args:
        in_channels, out_channels: image channels.
        spatial_dims: 2 or 3.
        width: stem width; level ``i`` has ``width * 2**i`` channels.
        n_downsample: stride-2 levels; the input must be divisible by ``2 ** n_downsample``.
        n_blocks: residual blocks at the bottleneck.
        norm: ``"instance"``, ``"batch"`` or ``"none"``.
        output: ``"tanh"`` or ``"linear"``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        *,
        spatial_dims: int = 2,
        width: int = 32,
        n_downsample: int = 2,
        n_blocks: int = 6,
        norm: str = "instance",
        output: str = "tanh",
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, minimum=1)
        self.out_channels = check_int("out_channels", out_channels, minimum=1)
        self.spatial_dims = dims = check_spatial_dims(spatial_dims)
        check_int("width", width, minimum=1)
        self.n_downsample = check_int("n_downsample", n_downsample, minimum=0)
        check_int("n_blocks", n_blocks, minimum=0)
        check_choice("norm", norm, ("instance", "batch", "none"))
        self.divisor = 2**self.n_downsample
        Conv, ConvT = conv(dims), conv_transpose(dims)
        layers: list[nn.Module] = [
            Pad(3),
            Conv(self.in_channels, width, kernel_size=7),
            norm_layer(norm, dims, width),
            nn.ReLU(),
        ]
        ch = width
        for _ in range(self.n_downsample):
            layers += [
                Conv(ch, 2 * ch, kernel_size=3, stride=2, padding=1),
                norm_layer(norm, dims, 2 * ch),
                nn.ReLU(),
            ]
            ch *= 2
        layers += [ResidualBlock(ch, spatial_dims=dims, norm=norm) for _ in range(n_blocks)]
        for _ in range(self.n_downsample):
            layers += [
                ConvT(ch, ch // 2, kernel_size=3, stride=2, padding=1, output_padding=1),
                norm_layer(norm, dims, ch // 2),
                nn.ReLU(),
            ]
            ch //= 2
        layers += [Pad(3), Conv(ch, self.out_channels, kernel_size=7), output_activation(output)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, in_channels, *S)`` with ``S`` divisible by ``2 ** n_downsample``."""
        check_input(x, "x", spatial_dims=self.spatial_dims, channels=self.in_channels)
        check_divisible(x, "x", self.divisor)
        return self.model(x)
