"""SPADE normalisation, SPADE residual blocks and an OASIS-style SPADE generator.

:class:`SPADE` normalises features without learned affine parameters, then modulates them with
a spatially varying scale and shift predicted from a conditioning map (any number of channels:
one-hot labels, a ConText-GAN context map, region-wise style codes broadcast to their regions).

:class:`SPADEGenerator` follows OASIS: the conditioning map is concatenated with 3D noise
(``z_dim`` channels per pixel) and this concatenation conditions every SPADE layer; the
generator starts from the conditioning map downsampled by ``2 ** (len(widths) - 1)`` and
upsamples x2 between SPADE residual blocks.

>>> import torch
>>> g = SPADEGenerator(4, spatial_dims=2, widths=(16, 8), z_dim=4, hidden=8)
>>> gen = torch.Generator().manual_seed(0)
>>> g(torch.rand(2, 4, 16, 16), generator=gen).shape
torch.Size([2, 1, 16, 16])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from synthaug._validate import check_choice, check_positive
from synthaug.errors import ShapeError, ValidationError
from synthaug.networks.interface import GeneratorModule
from synthaug.networks.layers import (
    check_divisible,
    check_input,
    check_int,
    check_spatial_dims,
    check_widths,
    conv,
    norm_layer,
    output_activation,
)

__all__ = ["SPADE", "SPADEResBlock", "SPADEGenerator", "truncated_normal"]


class SPADE(nn.Module):
    """Spatially-adaptive normalisation: ``norm(x) * (1 + gamma(c)) + beta(c)``.

    Args:
        norm_channels: channels of the normalised features ``x``.
        cond_channels: channels of the conditioning map ``c`` (any number).
        spatial_dims: 2 or 3.
        hidden: width of the shared convolution that embeds ``c``.
        norm: parameter-free ``"instance"`` (default) or ``"batch"`` normalisation.

    ``c`` is resized to the spatial size of ``x`` with nearest-neighbour interpolation, so label
    boundaries stay sharp at every resolution.
    """

    def __init__(
        self,
        norm_channels: int,
        cond_channels: int,
        *,
        spatial_dims: int,
        hidden: int = 32,
        norm: str = "instance",
    ) -> None:
        super().__init__()
        self.norm_channels = check_int("norm_channels", norm_channels, minimum=1)
        self.cond_channels = check_int("cond_channels", cond_channels, minimum=1)
        self.spatial_dims = dims = check_spatial_dims(spatial_dims)
        check_int("hidden", hidden, minimum=1)
        check_choice("norm", norm, ("instance", "batch"))
        self.norm = norm_layer(norm, dims, self.norm_channels, affine=False)
        Conv = conv(dims)
        self.shared = nn.Sequential(Conv(self.cond_channels, hidden, kernel_size=3, padding=1), nn.ReLU())
        self.gamma = Conv(hidden, self.norm_channels, kernel_size=3, padding=1)
        self.beta = Conv(hidden, self.norm_channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, norm_channels, *S)``, ``cond`` ``(B, cond_channels, *S')`` -> ``(B, norm_channels, *S)``."""
        if cond.shape[2:] != x.shape[2:]:
            cond = F.interpolate(cond, size=x.shape[2:], mode="nearest")
        h = self.shared(cond)
        return self.norm(x) * (1.0 + self.gamma(h)) + self.beta(h)


class SPADEResBlock(nn.Module):
    """SPADE residual block: ``[SPADE, LeakyReLU, conv3] x 2`` plus a (SPADE + 1x1) shortcut.

    The shortcut is learned only when ``in_ch != out_ch``; the middle width is ``min(in_ch, out_ch)``.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        cond_channels: int,
        *,
        spatial_dims: int,
        hidden: int = 32,
    ) -> None:
        super().__init__()
        self.in_ch = check_int("in_ch", in_ch, minimum=1)
        self.out_ch = check_int("out_ch", out_ch, minimum=1)
        dims = check_spatial_dims(spatial_dims)
        mid = min(self.in_ch, self.out_ch)
        Conv = conv(dims)
        self.norm_0 = SPADE(self.in_ch, cond_channels, spatial_dims=dims, hidden=hidden)
        self.conv_0 = Conv(self.in_ch, mid, kernel_size=3, padding=1)
        self.norm_1 = SPADE(mid, cond_channels, spatial_dims=dims, hidden=hidden)
        self.conv_1 = Conv(mid, self.out_ch, kernel_size=3, padding=1)
        self.act = nn.LeakyReLU(0.2)
        self.norm_s: SPADE | None = None
        self.conv_s: nn.Module | None = None
        if self.in_ch != self.out_ch:
            self.norm_s = SPADE(self.in_ch, cond_channels, spatial_dims=dims, hidden=hidden)
            self.conv_s = Conv(self.in_ch, self.out_ch, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if self.norm_s is not None and self.conv_s is not None:
            shortcut = self.conv_s(self.norm_s(x, cond))
        else:
            shortcut = x
        h = self.conv_0(self.act(self.norm_0(x, cond)))
        h = self.conv_1(self.act(self.norm_1(h, cond)))
        return shortcut + h


def truncated_normal(
    shape: Sequence[int],
    bound: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal samples truncated to ``[-bound, bound]`` by the inverse-CDF method.

    ``u ~ U(Phi(-bound), Phi(bound))`` and ``z = Phi^-1(u) = sqrt(2) * erfinv(2u - 1)``, computed in
    float64: one vectorised draw, no rejection loop, and the distribution is exactly the truncated
    normal. A final clamp only guards against floating-point round-off at very large bounds (where
    ``Phi(bound)`` rounds to 1); it never changes the distribution.
    """
    check_positive("truncation", float(bound))
    target = torch.device(device) if device is not None else torch.device("cpu")
    draw_on = generator.device if generator is not None else target
    lo = 0.5 * (1.0 + math.erf(-bound / math.sqrt(2.0)))
    hi = 0.5 * (1.0 + math.erf(bound / math.sqrt(2.0)))
    u = torch.rand(tuple(shape), generator=generator, device=draw_on, dtype=torch.float64)
    u = lo + (hi - lo) * u
    z = math.sqrt(2.0) * torch.erfinv(2.0 * u - 1.0)
    return z.clamp(-bound, bound).to(device=target, dtype=dtype)


class SPADEGenerator(GeneratorModule):
    """OASIS-style generator: conditioning map (+ 3D noise) -> image.

    Args:
        cond_channels: channels of the conditioning map (one-hot labels, context map, ...).
        out_channels: output image channels.
        spatial_dims: 2 or 3.
        widths: widths of the SPADE residual blocks, coarsest first; block ``i`` maps
            ``widths[i] -> widths[i + 1]`` and is followed by x2 nearest upsampling (except the
            last), so the input must be divisible by ``2 ** (len(widths) - 1)``.
        z_dim: noise channels per pixel concatenated to the conditioning map (0 = deterministic).
        hidden: SPADE embedding width.
        output: ``"tanh"`` or ``"linear"``.
    """

    def __init__(
        self,
        cond_channels: int,
        out_channels: int = 1,
        *,
        spatial_dims: int = 2,
        widths: Sequence[int] = (128, 64, 32, 16),
        z_dim: int = 16,
        hidden: int = 32,
        output: str = "tanh",
    ) -> None:
        super().__init__()
        self.cond_channels = check_int("cond_channels", cond_channels, minimum=1)
        self.out_channels = check_int("out_channels", out_channels, minimum=1)
        self.spatial_dims = dims = check_spatial_dims(spatial_dims)
        self.widths = w = check_widths("widths", widths)
        self.z_dim = check_int("z_dim", z_dim, minimum=0)
        check_int("hidden", hidden, minimum=1)
        self.divisor = 2 ** (len(w) - 1)
        c = self.cond_channels + self.z_dim
        Conv = conv(dims)
        self.stem = Conv(c, w[0], kernel_size=3, padding=1)
        outs = (*w[1:], w[-1])
        self.blocks = nn.ModuleList(
            SPADEResBlock(cin, cout, c, spatial_dims=dims, hidden=hidden)
            for cin, cout in zip(w, outs, strict=True)
        )
        self.head = nn.Sequential(nn.LeakyReLU(0.2), Conv(w[-1], self.out_channels, kernel_size=3, padding=1))
        self.out_act = output_activation(output)
        self.output = output

    def sample_noise(
        self,
        batch: int,
        *,
        spatial: Sequence[int] | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        truncation: float | None = None,
    ) -> torch.Tensor:
        """Noise ``(batch, z_dim)`` (one code per image, OASIS default) or ``(batch, z_dim, *spatial)``.

        Pass ``spatial`` for spatially varying noise. ``truncation`` bounds it to
        ``[-truncation, truncation]`` (see :func:`truncated_normal`).
        """
        shape = (batch, self.z_dim, *(tuple(spatial) if spatial is not None else ()))
        if truncation is not None:
            return truncated_normal(shape, truncation, generator=generator, device=device, dtype=dtype)
        target = torch.device(device) if device is not None else torch.device("cpu")
        draw_on = generator.device if generator is not None else target
        return torch.randn(shape, generator=generator, device=draw_on, dtype=dtype).to(target)

    def _noise_map(self, noise: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        b, spatial = cond.shape[0], tuple(cond.shape[2:])
        if noise.ndim == 2 and tuple(noise.shape) == (b, self.z_dim):
            noise = noise.view(b, self.z_dim, *([1] * self.spatial_dims)).expand(b, self.z_dim, *spatial)
        elif tuple(noise.shape) != (b, self.z_dim, *spatial):
            raise ShapeError(
                f"noise must have shape ({b}, {self.z_dim}) or ({b}, {self.z_dim}, {', '.join(map(str, spatial))}) "
                f"to match cond {tuple(cond.shape)} and z_dim={self.z_dim}, got {tuple(noise.shape)}."
            )
        return noise.to(device=cond.device, dtype=cond.dtype)

    def forward(
        self,
        cond: torch.Tensor,
        *,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        truncation: float | None = None,
    ) -> torch.Tensor:
        """``cond`` ``(B, cond_channels, *S)`` -> image ``(B, out_channels, *S)``.

        ``noise=None`` draws one standard-normal code per image with ``generator`` (on cond's
        device and dtype), truncated to ``[-truncation, truncation]`` when ``truncation`` is given;
        an explicit ``noise`` may be ``(B, z_dim)`` or spatially varying ``(B, z_dim, *S)``.
        """
        check_input(cond, "cond", spatial_dims=self.spatial_dims, channels=self.cond_channels)
        check_divisible(cond, "cond", self.divisor)
        small = tuple(s // self.divisor for s in cond.shape[2:])
        if math.prod(small) == 1:
            raise ShapeError(
                f"cond spatial size {tuple(cond.shape[2:])} is too small: the generator starts at 1/{self.divisor} "
                "of it, which must hold more than one voxel for instance normalisation. Use larger inputs "
                "or fewer widths."
            )
        if noise is not None and self.z_dim == 0:
            raise ValidationError("noise was given but z_dim=0: this generator takes no noise.")
        if noise is not None and truncation is not None:
            raise ValidationError(
                "pass either noise or truncation, not both: truncation applies to drawn noise."
            )
        if self.z_dim > 0:
            if noise is None:
                noise = self.sample_noise(
                    cond.shape[0],
                    generator=generator,
                    device=cond.device,
                    dtype=cond.dtype,
                    truncation=truncation,
                )
            cz = torch.cat([cond, self._noise_map(noise, cond)], dim=1)
        else:
            cz = cond
        x = self.stem(F.interpolate(cz, size=small, mode="nearest") if self.divisor > 1 else cz)
        for i, block in enumerate(self.blocks):
            x = block(x, cz)
            if i < len(self.blocks) - 1:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.out_act(self.head(x))
