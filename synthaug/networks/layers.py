"""Dimension-aware layer factories shared by every network in :mod:`synthaug.networks`.

Each factory takes ``spatial_dims`` (2 or 3) and returns the matching torch class or module, so a
network is written once and built for 2D slices or 3D volumes:

>>> import torch
>>> from synthaug.networks.layers import conv, norm_layer
>>> conv(3)(1, 8, kernel_size=3, padding=1)(torch.zeros(1, 1, 4, 4, 4)).shape
torch.Size([1, 8, 4, 4, 4])
>>> type(norm_layer("instance", 2, 8)).__name__
'InstanceNorm2d'
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from synthaug._validate import check_choice
from synthaug.errors import ShapeError, ValidationError

__all__ = [
    "NORMS",
    "OUTPUTS",
    "check_spatial_dims",
    "check_widths",
    "check_int",
    "conv",
    "conv_transpose",
    "avg_pool",
    "max_pool",
    "norm_layer",
    "output_activation",
    "Pad",
    "check_divisible",
    "check_input",
]

NORMS: tuple[str, ...] = ("instance", "batch", "none")
"""Normalisation names accepted by :func:`norm_layer` (``"none"`` means identity)."""

OUTPUTS: tuple[str, ...] = ("tanh", "linear")
"""Output activations accepted by the generators."""


def check_spatial_dims(spatial_dims: int) -> int:
    """Return ``spatial_dims`` if it is 2 or 3; else raise :class:`ValidationError`."""
    if isinstance(spatial_dims, bool) or not isinstance(spatial_dims, int) or spatial_dims not in (2, 3):
        raise ValidationError(f"spatial_dims must be 2 (slices) or 3 (volumes), got {spatial_dims!r}.")
    return int(spatial_dims)


def check_int(name: str, value: int, *, minimum: int) -> int:
    """Return ``value`` if it is an integer >= ``minimum``; else raise :class:`ValidationError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return value


def check_widths(name: str, widths: Sequence[int], *, min_len: int = 1) -> tuple[int, ...]:
    """Return ``widths`` as a tuple of positive ints with at least ``min_len`` entries."""
    try:
        out = tuple(widths)
    except TypeError:
        raise ValidationError(f"{name} must be a sequence of positive integers, got {widths!r}.") from None
    if len(out) < min_len:
        raise ValidationError(f"{name} must hold at least {min_len} width(s), got {widths!r}.")
    for w in out:
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ValidationError(f"{name} must hold positive integers only, got {widths!r}.")
    return out


def conv(spatial_dims: int) -> type[nn.Conv2d] | type[nn.Conv3d]:
    """``nn.Conv2d`` or ``nn.Conv3d``."""
    return nn.Conv3d if check_spatial_dims(spatial_dims) == 3 else nn.Conv2d


def conv_transpose(spatial_dims: int) -> type[nn.ConvTranspose2d] | type[nn.ConvTranspose3d]:
    """``nn.ConvTranspose2d`` or ``nn.ConvTranspose3d``."""
    return nn.ConvTranspose3d if check_spatial_dims(spatial_dims) == 3 else nn.ConvTranspose2d


def avg_pool(spatial_dims: int) -> type[nn.AvgPool2d] | type[nn.AvgPool3d]:
    """``nn.AvgPool2d`` or ``nn.AvgPool3d``."""
    return nn.AvgPool3d if check_spatial_dims(spatial_dims) == 3 else nn.AvgPool2d


def max_pool(spatial_dims: int) -> type[nn.MaxPool2d] | type[nn.MaxPool3d]:
    """``nn.MaxPool2d`` or ``nn.MaxPool3d``."""
    return nn.MaxPool3d if check_spatial_dims(spatial_dims) == 3 else nn.MaxPool2d


def norm_layer(name: str, spatial_dims: int, channels: int, *, affine: bool = True) -> nn.Module:
    """A normalisation layer by name: ``"instance"``, ``"batch"`` or ``"none"`` (identity).

    ``affine=False`` gives the parameter-free form used inside SPADE.
    """
    check_choice("norm", name, NORMS)
    dims = check_spatial_dims(spatial_dims)
    if name == "none":
        return nn.Identity()
    if name == "instance":
        cls_i = nn.InstanceNorm3d if dims == 3 else nn.InstanceNorm2d
        return cls_i(channels, affine=affine)
    cls_b = nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d
    return cls_b(channels, affine=affine)


def output_activation(name: str) -> nn.Module:
    """``nn.Tanh()`` for ``"tanh"`` or ``nn.Identity()`` for ``"linear"``."""
    check_choice("output", name, OUTPUTS)
    return nn.Tanh() if name == "tanh" else nn.Identity()


class Pad(nn.Module):
    """Pad every spatial side by ``amount``, reflecting where the size allows.

    Reflect padding needs each spatial size to exceed ``amount``; smaller feature maps (deep
    levels of tiny inputs) fall back to replicate padding instead of failing.
    """

    def __init__(self, amount: int, *, mode: str = "reflect") -> None:
        super().__init__()
        self.amount = check_int("amount", amount, minimum=0)
        self.mode = check_choice("mode", mode, ("reflect", "replicate", "zeros"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.amount == 0:
            return x
        pads = [self.amount] * (2 * (x.ndim - 2))
        if self.mode == "zeros":
            return F.pad(x, pads)
        mode = self.mode
        if mode == "reflect" and min(x.shape[2:]) <= self.amount:
            mode = "replicate"
        return F.pad(x, pads, mode=mode)

    def extra_repr(self) -> str:
        return f"amount={self.amount}, mode={self.mode!r}"


def check_input(x: torch.Tensor, name: str, *, spatial_dims: int, channels: int | None) -> None:
    """Raise :class:`ShapeError` unless ``x`` is ``(B, channels, *spatial)`` with ``spatial_dims`` axes."""
    if not isinstance(x, torch.Tensor):
        raise ValidationError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    if x.ndim != spatial_dims + 2:
        raise ShapeError(
            f"{name} must have shape (B, C, {', '.join('DHW'[-spatial_dims:])}) for spatial_dims="
            f"{spatial_dims}, got shape {tuple(x.shape)}."
        )
    if channels is not None and x.shape[1] != channels:
        raise ShapeError(
            f"{name} must have {channels} channel(s) in dimension 1, got shape {tuple(x.shape)}."
        )
    if not x.is_floating_point():
        raise ValidationError(f"{name} must be a floating-point tensor, got dtype {x.dtype}.")


def check_divisible(x: torch.Tensor, name: str, divisor: int) -> None:
    """Raise :class:`ShapeError` unless every spatial size of ``x`` is divisible by ``divisor``."""
    spatial = tuple(x.shape[2:])
    if any(s % divisor for s in spatial):
        padded = tuple(-(-s // divisor) * divisor for s in spatial)
        raise ShapeError(
            f"{name} spatial size {spatial} must be divisible by {divisor} in every dimension "
            f"(the network halves it {divisor.bit_length() - 1} time(s)). Pad the input to {padded} "
            "(e.g. torch.nn.functional.pad or monai.transforms.DivisiblePad) and crop the output."
        )
