"""ResGAN auto-context: a chain of residual U-Nets, each refining the previous stage's output."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from synthaug.networks.interface import GeneratorModule
from synthaug.networks.layers import check_input, check_int, check_spatial_dims
from synthaug.networks.unet_generator import UNetGenerator

__all__ = ["AutoContextGenerator"]


class AutoContextGenerator(GeneratorModule):
    """A chain of residual U-Nets (ResGAN + auto-context): stage ``k > 0`` takes ``[y_{k-1}, x]``.

    Stage 0 maps the source ``x`` ``(B, in_channels, *S)`` to ``y_0``; stage ``k`` maps
    ``cat([y_{k-1}, x])`` to ``y_k`` and (with ``residual=True``) adds its input channel 0, i.e. the
    previous stage's output, so later stages refine. :meth:`forward` returns the last stage's output,
    or every stage's with ``all_stages=True``.

    >>> g = AutoContextGenerator(spatial_dims=2, widths=(4, 8), n_stages=2)
    >>> g(torch.zeros(1, 1, 16, 16)).shape
    torch.Size([1, 1, 16, 16])
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        *,
        spatial_dims: int = 3,
        widths: Sequence[int] = (16, 32, 64),
        n_stages: int = 2,
        norm: str = "instance",
        dropout: float = 0.0,
        residual: bool = True,
        output: str = "tanh",
        upsample: str = "transpose",
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, minimum=1)
        self.out_channels = check_int("out_channels", out_channels, minimum=1)
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.n_stages = check_int("n_stages", n_stages, minimum=1)
        self.stages = nn.ModuleList(
            UNetGenerator(
                self.in_channels if k == 0 else self.out_channels + self.in_channels,
                self.out_channels,
                spatial_dims=self.spatial_dims,
                widths=widths,
                norm=norm,
                dropout=dropout,
                residual=residual,
                output=output,
                upsample=upsample,
            )
            for k in range(self.n_stages)
        )
        self.divisor = self.stages[0].divisor

    def forward(
        self, x: torch.Tensor, *, generator: torch.Generator | None = None, all_stages: bool = False
    ) -> torch.Tensor | list[torch.Tensor]:
        check_input(x, "x", spatial_dims=self.spatial_dims, channels=self.in_channels)
        outs = [self.stages[0](x, generator=generator)]
        for stage in self.stages[1:]:
            outs.append(stage(torch.cat([outs[-1], x], dim=1), generator=generator))
        return outs if all_stages else outs[-1]
