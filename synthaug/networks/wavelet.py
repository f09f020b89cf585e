"""Haar wavelet transform and the Med-USIS wavelet discriminator (Haar sub-bands -> PatchGAN).

Med-USIS feeds the discriminator the wavelet decomposition of the image instead of its pixels, so
high-frequency detail (the ``LH``/``HL``/``HH`` bands) is judged explicitly and the generator is
pushed toward realistic fine texture. :func:`haar_dwt` is one level of the orthonormal Haar
transform along every spatial axis (2D: 4 sub-bands, 3D: 8), and :func:`haar_idwt` inverts it
exactly.

>>> import torch
>>> x = torch.rand(1, 1, 8, 8)
>>> bands = haar_dwt(x)
>>> bands.shape
torch.Size([1, 4, 4, 4])
>>> torch.allclose(haar_idwt(bands), x, atol=1e-6)
True
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from synthaug.errors import ShapeError, ValidationError
from synthaug.networks.discriminators import PatchDiscriminator
from synthaug.networks.layers import check_input, check_int, check_spatial_dims

__all__ = ["haar_dwt", "haar_idwt", "WaveletDiscriminator"]

_SQRT2 = math.sqrt(2.0)


def _check(x: torch.Tensor, name: str) -> int:
    if not isinstance(x, torch.Tensor):
        raise ValidationError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    if x.ndim not in (4, 5) or not x.is_floating_point():
        raise ShapeError(
            f"{name} must be a float tensor (B, C, H, W) or (B, C, D, H, W), got {tuple(x.shape)} {x.dtype}."
        )
    return x.ndim - 2


def haar_dwt(x: torch.Tensor) -> torch.Tensor:
    """One orthonormal Haar level along every spatial axis: ``(B, C, *S)`` -> ``(B, C * 2**d, *S / 2)``.

    Channel ``c * 2**d + j`` holds sub-band ``j`` of input channel ``c``; in 2D the bands are
    ``[LL, HL, LH, HH]`` where the first letter is the filter along H and the second along W
    (``L`` = (a + b) / sqrt 2, ``H`` = (a - b) / sqrt 2 of neighbouring pairs). Sizes must be even.
    """
    dims = _check(x, "x")
    if any(s % 2 for s in x.shape[2:]):
        raise ShapeError(f"haar_dwt needs even spatial sizes, got {tuple(x.shape[2:])}; pad the input first.")
    bands = x.unsqueeze(2)  # (B, C, n_bands, *S)
    for a in range(dims):
        axis = 3 + a
        pairs = bands.unflatten(axis, (bands.shape[axis] // 2, 2))
        even, odd = pairs.select(axis + 1, 0), pairs.select(axis + 1, 1)
        bands = torch.cat([(even + odd) / _SQRT2, (even - odd) / _SQRT2], dim=2)
    return bands.flatten(1, 2)


def haar_idwt(bands: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`haar_dwt`: ``(B, C * 2**d, *S)`` -> ``(B, C, *2S)``."""
    dims = _check(bands, "bands")
    n = 2**dims
    if bands.shape[1] % n:
        raise ShapeError(f"bands must have a multiple of {n} channels for {dims} spatial dimensions, got {bands.shape[1]}.")
    x = bands.unflatten(1, (bands.shape[1] // n, n))  # (B, C, n_bands, *S)
    for a in reversed(range(dims)):
        axis = 3 + a
        half = x.shape[2] // 2
        low, high = x[:, :, :half], x[:, :, half:]
        even, odd = (low + high) / _SQRT2, (low - high) / _SQRT2
        x = torch.stack([even, odd], dim=axis + 1).flatten(axis, axis + 1)
    return x[:, :, 0]


class WaveletDiscriminator(nn.Module):
    """Med-USIS discriminator: a :class:`PatchDiscriminator` on the Haar sub-bands of the image.

    Args:
        in_channels: image channels (each gives ``2 ** spatial_dims`` sub-bands).
        cond_channels: optional conditioning channels (e.g. one-hot labels), average-pooled x2 to the
            sub-band grid and concatenated; 0 for an unconditional discriminator (unpaired training).
        spatial_dims, width, n_layers, norm: the PatchGAN on the half-resolution sub-bands.

    Returns logits ``(B, 1, *S / 2 ** (n_layers + 1))``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        *,
        cond_channels: int = 0,
        spatial_dims: int = 2,
        width: int = 32,
        n_layers: int = 3,
        norm: str = "instance",
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, minimum=1)
        self.cond_channels = check_int("cond_channels", cond_channels, minimum=0)
        self.spatial_dims = dims = check_spatial_dims(spatial_dims)
        self.patch = PatchDiscriminator(
            self.in_channels * 2**dims + self.cond_channels, spatial_dims=dims, width=width, n_layers=n_layers, norm=norm
        )

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        check_input(x, "x", spatial_dims=self.spatial_dims, channels=self.in_channels)
        h = haar_dwt(x)
        if self.cond_channels:
            if cond is None:
                raise ValidationError(f"this WaveletDiscriminator needs cond with {self.cond_channels} channels.")
            check_input(cond, "cond", spatial_dims=self.spatial_dims, channels=self.cond_channels)
            if cond.shape[2:] != x.shape[2:]:
                raise ShapeError(f"cond {tuple(cond.shape)} must share the spatial size of x {tuple(x.shape)}.")
            pool = F.avg_pool3d if self.spatial_dims == 3 else F.avg_pool2d
            h = torch.cat([h, pool(cond, 2)], dim=1)
        elif cond is not None:
            raise ValidationError("cond was given but cond_channels=0: this discriminator is unconditional.")
        return self.patch(h)
