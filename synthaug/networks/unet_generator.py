"""pix2pix-style U-Net generator (ConText-GAN P2P / P2PF, ResGAN with ``residual=True``).

Encoder: one stride-2 convolution (kernel 4) per entry of ``widths``, LeakyReLU 0.2 before every
convolution but the first, normalisation after every convolution but the first and the innermost
(as in pix2pix, so a 1-pixel bottleneck never meets instance norm). Decoder: ReLU, stride-2
upsampling (transposed convolution, or nearest resize + 3x3 convolution with
``upsample="resize"``), normalisation and optional dropout, then concatenation with the mirrored
encoder feature map. The input size must be divisible by ``2 ** len(widths)``.

>>> import torch
>>> g = UNetGenerator(3, 1, spatial_dims=2, widths=(8, 16))
>>> g(torch.zeros(1, 3, 32, 32)).shape
torch.Size([1, 1, 32, 32])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from synthaug._validate import check_choice, check_range
from synthaug.networks.interface import GeneratorModule
from synthaug.networks.layers import (
    check_divisible,
    check_input,
    check_int,
    check_spatial_dims,
    check_widths,
    conv,
    conv_transpose,
    norm_layer,
    output_activation,
)

__all__ = ["UNetGenerator"]

UPSAMPLES: tuple[str, ...] = ("transpose", "resize")


def _up(spatial_dims: int, cin: int, cout: int, mode: str) -> nn.Module:
    if mode == "transpose":
        return conv_transpose(spatial_dims)(cin, cout, kernel_size=4, stride=2, padding=1)
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        conv(spatial_dims)(cin, cout, kernel_size=3, padding=1),
    )


class UNetGenerator(GeneratorModule):
    """Encoder-decoder with skip concatenations; ``(B, in_channels, *S) -> (B, out_channels, *S)``.

    Args:
        in_channels: input channels (label one-hot / context map / feature channels / image).
        out_channels: output channels.
        spatial_dims: 2 or 3.
        widths: encoder widths, one stride-2 level each; the input must be divisible by
            ``2 ** len(widths)``.
        norm: ``"instance"``, ``"batch"`` or ``"none"``.
        dropout: dropout probability in the decoder upsampling blocks (pix2pix uses 0.5; the
            mask is drawn with the ``generator`` passed to :meth:`forward`, training mode only).
        residual: add the input to the output before the output activation (ResGAN's
            input->output skip): the input itself when ``in_channels == out_channels``, input
            channel 0 when ``out_channels == 1``, otherwise a learned 1x1 projection.
        output: ``"tanh"`` or ``"linear"``.
        upsample: ``"transpose"`` (transposed convolution, pix2pix) or ``"resize"`` (nearest
            upsampling + 3x3 convolution, avoids checkerboard artefacts).

    The last layer is :attr:`final` (zero it to make a residual network return its skip).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 1,
        *,
        spatial_dims: int = 2,
        widths: Sequence[int] = (32, 64, 128, 256),
        norm: str = "instance",
        dropout: float = 0.0,
        residual: bool = False,
        output: str = "tanh",
        upsample: str = "transpose",
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, minimum=1)
        self.out_channels = check_int("out_channels", out_channels, minimum=1)
        self.spatial_dims = dims = check_spatial_dims(spatial_dims)
        self.widths = w = check_widths("widths", widths)
        check_choice("norm", norm, ("instance", "batch", "none"))
        self.dropout = float(check_range("dropout", float(dropout), 0.0, 0.99))
        self.residual = bool(residual)
        self.upsample = check_choice("upsample", upsample, UPSAMPLES)
        self.divisor = 2 ** len(w)
        Conv = conv(dims)

        self.down = nn.ModuleList()
        for i, width in enumerate(w):
            cin = self.in_channels if i == 0 else w[i - 1]
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(Conv(cin, width, kernel_size=4, stride=2, padding=1))
            if 0 < i < len(w) - 1:
                layers.append(norm_layer(norm, dims, width))
            self.down.append(nn.Sequential(*layers))

        self.up = nn.ModuleList()
        for i in range(len(w) - 1, 0, -1):
            cin = w[i] if i == len(w) - 1 else 2 * w[i]
            self.up.append(
                nn.Sequential(
                    nn.ReLU(), _up(dims, cin, w[i - 1], self.upsample), norm_layer(norm, dims, w[i - 1])
                )
            )
        last_in = w[0] if len(w) == 1 else 2 * w[0]
        self.final = _up(dims, last_in, self.out_channels, self.upsample)
        self.final_act = nn.ReLU()
        self.skip: nn.Module | None = None
        if self.residual and self.in_channels != self.out_channels and self.out_channels != 1:
            self.skip = Conv(self.in_channels, self.out_channels, kernel_size=1)
        self.out_act = output_activation(output)
        self.output = output

    def _drop(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if not self.training or self.dropout == 0.0:
            return x
        if generator is not None and generator.device != x.device:
            u = torch.rand(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)
        else:
            u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x * (u >= self.dropout).to(x.dtype) / (1.0 - self.dropout)

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``x`` ``(B, in_channels, *S)`` with ``S`` divisible by ``2 ** len(widths)``."""
        check_input(x, "x", spatial_dims=self.spatial_dims, channels=self.in_channels)
        check_divisible(x, "x", self.divisor)
        skips: list[torch.Tensor] = []
        h = x
        for block in self.down:
            h = block(h)
            skips.append(h)
        skips.pop()
        for block in self.up:
            h = self._drop(block(h), generator)
            h = torch.cat([h, skips.pop()], dim=1)
        y = self.final(self.final_act(h))
        if self.residual:
            if self.skip is not None:
                y = y + self.skip(x)
            elif self.in_channels == self.out_channels:
                y = y + x
            else:
                y = y + x[:, :1]
        return self.out_act(y)
