"""Discriminators: PatchGAN, multi-scale PatchGAN (NEC) and the OASIS segmentation discriminator.

>>> import torch
>>> d = PatchDiscriminator(2, spatial_dims=2, width=8)
>>> d(torch.zeros(1, 2, 32, 32)).shape
torch.Size([1, 1, 4, 4])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from synthaug._validate import check_choice
from synthaug.errors import ShapeError
from synthaug.networks.interface import GeneratorModule
from synthaug.networks.layers import (
    check_divisible,
    check_input,
    check_int,
    check_spatial_dims,
    check_widths,
    conv,
    norm_layer,
)

__all__ = ["PatchDiscriminator", "MultiScalePatchDiscriminator", "SegmentationDiscriminator"]


class PatchDiscriminator(nn.Module):
    """PatchGAN: ``n_layers`` stride-2 kernel-4 convolutions, then two stride-1 kernel-3 ones.

    Widths are ``width * min(2**i, 8)``; LeakyReLU 0.2; normalisation after every convolution
    but the first and the last. Returns a logit map ``(B, 1, *S / 2**n_layers)`` (no sigmoid).
    Unlike pix2pix's kernel-4 stride-1 tail (which shrinks the map by 1 per layer), the kernel-3
    tail keeps the size, so small 3D patches still give a map. Every spatial size must be at least
    ``2 ** (n_layers + 1)`` so the normalised deepest maps hold more than one voxel.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        spatial_dims: int = 2,
        width: int = 32,
        n_layers: int = 3,
        norm: str = "instance",
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, minimum=1)
        self.spatial_dims = dims = check_spatial_dims(spatial_dims)
        check_int("width", width, minimum=1)
        self.n_layers = check_int("n_layers", n_layers, minimum=1)
        check_choice("norm", norm, ("instance", "batch", "none"))
        self.min_size = 2 ** (self.n_layers + 1)
        Conv = conv(dims)
        layers: list[nn.Module] = [
            Conv(self.in_channels, width, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        ]
        ch = width
        for i in range(1, self.n_layers + 1):
            out = width * min(2**i, 8)
            stride = 2 if i < self.n_layers else 1
            k, p = (4, 1) if stride == 2 else (3, 1)
            layers += [
                Conv(ch, out, kernel_size=k, stride=stride, padding=p),
                norm_layer(norm, dims, out),
                nn.LeakyReLU(0.2),
            ]
            ch = out
        layers.append(Conv(ch, 1, kernel_size=3, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, in_channels, *S)`` -> logits ``(B, 1, *S // 2**n_layers)``."""
        check_input(x, "x", spatial_dims=self.spatial_dims, channels=self.in_channels)
        if min(x.shape[2:]) < self.min_size:
            raise ShapeError(
                f"x spatial size {tuple(x.shape[2:])} is too small for a PatchDiscriminator with "
                f"n_layers={self.n_layers}: every size must be >= {self.min_size}. Use larger patches "
                "or fewer layers."
            )
        return self.model(x)


class MultiScalePatchDiscriminator(nn.Module):
    """``n_scales`` independent PatchGANs on the input, /2, /4, ... (3x3 average pooling, stride 2).

    Returns a list of logit maps, finest first; :func:`synthaug.losses.adversarial.gan_loss`
    averages over it. The input must be at least ``2 ** (n_layers + n_scales)`` in every dimension.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        spatial_dims: int = 2,
        n_scales: int = 3,
        width: int = 32,
        n_layers: int = 3,
        norm: str = "instance",
    ) -> None:
        super().__init__()
        self.spatial_dims = dims = check_spatial_dims(spatial_dims)
        self.n_scales = check_int("n_scales", n_scales, minimum=1)
        self.discriminators = nn.ModuleList(
            PatchDiscriminator(in_channels, spatial_dims=dims, width=width, n_layers=n_layers, norm=norm)
            for _ in range(self.n_scales)
        )
        self.min_size = 2 ** (n_layers + 1) * 2 ** (self.n_scales - 1)

    def _down(self, x: torch.Tensor) -> torch.Tensor:
        pool = F.avg_pool3d if self.spatial_dims == 3 else F.avg_pool2d
        return pool(x, kernel_size=3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x`` ``(B, in_channels, *S)`` -> logit maps at ``S``, ``S/2``, ``S/4``, ..."""
        check_input(x, "x", spatial_dims=self.spatial_dims, channels=self.discriminators[0].in_channels)
        if min(x.shape[2:]) < self.min_size:
            raise ShapeError(
                f"x spatial size {tuple(x.shape[2:])} is too small for {self.n_scales} scales: every size "
                f"must be >= {self.min_size}. Use larger patches, fewer scales or fewer layers."
            )
        outs: list[torch.Tensor] = []
        for i, disc in enumerate(self.discriminators):
            if i > 0:
                x = self._down(x)
            outs.append(disc(x))
        return outs


def _sn(module: nn.Module, enabled: bool) -> nn.Module:
    return _spectral_norm(module) if enabled else module


class _ResBlock(nn.Module):
    """OASIS discriminator block: ``[LReLU, conv3] x 2`` + 1x1 shortcut; optional 2x average-pool down."""

    def __init__(self, cin: int, cout: int, *, spatial_dims: int, down: bool, spectral: bool) -> None:
        super().__init__()
        Conv = conv(spatial_dims)
        self.down = down
        self.spatial_dims = spatial_dims
        self.conv_0 = _sn(Conv(cin, cout, kernel_size=3, padding=1), spectral)
        self.conv_1 = _sn(Conv(cout, cout, kernel_size=3, padding=1), spectral)
        self.shortcut = _sn(Conv(cin, cout, kernel_size=1), spectral) if cin != cout else nn.Identity()
        self.act = nn.LeakyReLU(0.2)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        if not self.down:
            return x
        return (F.avg_pool3d if self.spatial_dims == 3 else F.avg_pool2d)(x, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_1(self.act(self.conv_0(self.act(x))))
        return self._pool(self.shortcut(x) + h)


class SegmentationDiscriminator(GeneratorModule):
    """OASIS U-Net discriminator: per-pixel logits over ``n_classes`` (= N_L + 1, last = "fake").

    Encoder: a stem convolution and residual blocks, each halving the size (average pooling);
    decoder: nearest x2 upsampling, concatenation with the encoder map of the same size, residual
    block; a 1x1 convolution gives the logits at input resolution. Convolutions are spectrally
    normalised (``spectral=True``, as in OASIS); there is no other normalisation. The input must
    be divisible by ``2 ** (len(widths) - 1)``.
    """

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        *,
        spatial_dims: int = 2,
        widths: Sequence[int] = (32, 64, 128, 256),
        spectral: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, minimum=1)
        self.n_classes = check_int("n_classes", n_classes, minimum=2)
        self.spatial_dims = dims = check_spatial_dims(spatial_dims)
        self.widths = w = check_widths("widths", widths)
        self.divisor = 2 ** (len(w) - 1)
        Conv = conv(dims)
        self.stem = _sn(Conv(self.in_channels, w[0], kernel_size=3, padding=1), spectral)
        self.down = nn.ModuleList(
            _ResBlock(w[i - 1], w[i], spatial_dims=dims, down=True, spectral=spectral)
            for i in range(1, len(w))
        )
        self.up = nn.ModuleList(
            _ResBlock(w[i] + w[i - 1], w[i - 1], spatial_dims=dims, down=False, spectral=spectral)
            for i in range(len(w) - 1, 0, -1)
        )
        self.head = Conv(w[0], self.n_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, in_channels, *S)`` -> logits ``(B, n_classes, *S)``."""
        check_input(x, "x", spatial_dims=self.spatial_dims, channels=self.in_channels)
        check_divisible(x, "x", self.divisor)
        h = self.stem(x)
        skips = [h]
        for block in self.down:
            h = block(h)
            skips.append(h)
        skips.pop()
        for block in self.up:
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = block(torch.cat([h, skips.pop()], dim=1))
        return self.head(F.leaky_relu(h, 0.2))
