"""Texture-control loss L_CT = |Theta(y) - Theta(y_hat)| of ConText-GAN.

Soft (differentiable) per-region features of the generated image are compared with the features
of the real image, or with requested target features, over the regions present in the label map.
With ``normalise=True`` every feature is scaled by its natural range (0..100 divided by 100, so
0..1) and mean intensity and entropy weigh alike.

>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> labels = torch.randint(0, 3, (2, 8, 8), generator=g)
>>> real = torch.rand(2, 1, 8, 8, generator=g) * 2 - 1
>>> float(texture_control_loss(real, real, labels, n_labels=3))
0.0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from synthaug._validate import check_image
from synthaug.errors import ShapeError, ValidationError
from synthaug.features.maps import feature_bounds
from synthaug.features.region import (
    RegionFeatures,
    check_feature_names,
    check_histogram_options,
    region_features,
)
from synthaug.features.registry import get_feature

__all__ = ["texture_control_loss", "TextureControlLoss"]

DEFAULT_NAMES: tuple[str, ...] = ("mean", "entropy")


def texture_control_loss(
    fake: torch.Tensor,
    target: torch.Tensor,
    labels: torch.Tensor,
    *,
    n_labels: int,
    names: Sequence[str] = DEFAULT_NAMES,
    bins: int = 32,
    value_range: tuple[float, float] = (-1.0, 1.0),
    bandwidth: float | None = None,
    normalise: bool = True,
) -> torch.Tensor:
    """Mean absolute feature difference over present regions (a scalar, differentiable w.r.t. ``fake``).

    Args:
        fake: generated image ``(B, 1, *spatial)``.
        target: either the real image ``(B, 1, *spatial)`` (its features are measured the same soft
            way and treated as constants), or target features ``(B, N_F, N_L)`` in raw units
            (use :func:`synthaug.features.denormalise_features` for 0..100 targets).
        labels: ``(B, *spatial)`` or ``(B, 1, *spatial)`` map with values in ``0..n_labels-1``;
            regions absent from a sample carry zero weight, whatever their target.
        names: registered differentiable features; bins, value_range, bandwidth: soft histogram.
        normalise: divide each feature's difference by the width of its natural range.
    """
    names = _check_differentiable(names)

    def measure(image: torch.Tensor) -> RegionFeatures:
        return region_features(
            image,
            labels,
            n_labels=n_labels,
            names=names,
            bins=bins,
            value_range=value_range,
            soft=True,
            bandwidth=bandwidth,
        )

    got = measure(fake)
    want = _target_values(target, got, measure, fake.shape)
    diff = (got.values - want).abs()
    if normalise:
        lo, hi = feature_bounds(names, value_range=got.value_range, bins=bins, like=diff)
        diff = diff / (hi - lo)
    weight = got.present.to(diff.dtype).unsqueeze(1)  # (B, 1, N_L)
    return (diff * weight).sum() / (weight.sum() * len(names)).clamp_min(1)


class TextureControlLoss(nn.Module):
    """:func:`texture_control_loss` with its options fixed at construction.

    >>> loss = TextureControlLoss(n_labels=4, names=("mean", "entropy"), bins=16)
    >>> loss
    TextureControlLoss(n_labels=4, names=('mean', 'entropy'), bins=16, value_range=(-1.0, 1.0), bandwidth=None, normalise=True)
    """

    def __init__(
        self,
        *,
        n_labels: int,
        names: Sequence[str] = DEFAULT_NAMES,
        bins: int = 32,
        value_range: tuple[float, float] = (-1.0, 1.0),
        bandwidth: float | None = None,
        normalise: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(n_labels, bool) or not isinstance(n_labels, int) or n_labels < 1:
            raise ValidationError(
                f"n_labels must be an integer >= 1 (background 0 counts), got {n_labels!r}."
            )
        self.names = _check_differentiable(names)
        self.value_range = check_histogram_options(bins=bins, value_range=value_range, bandwidth=bandwidth)
        self.n_labels, self.bins, self.bandwidth, self.normalise = n_labels, bins, bandwidth, bool(normalise)

    def forward(self, fake: torch.Tensor, target: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return texture_control_loss(
            fake,
            target,
            labels,
            n_labels=self.n_labels,
            names=self.names,
            bins=self.bins,
            value_range=self.value_range,
            bandwidth=self.bandwidth,
            normalise=self.normalise,
        )

    def extra_repr(self) -> str:
        return (
            f"n_labels={self.n_labels}, names={self.names}, bins={self.bins}, value_range={self.value_range}, "
            f"bandwidth={self.bandwidth}, normalise={self.normalise}"
        )


def _check_differentiable(names: Sequence[str]) -> tuple[str, ...]:
    names = check_feature_names(names)
    bad = [n for n in names if not get_feature(n).differentiable]
    if bad:
        raise ValidationError(
            f"texture-control features must be differentiable; {bad} are registered with differentiable=False. "
            "Drop them from names or register a soft version."
        )
    return names


def _target_values(
    target: torch.Tensor,
    got: RegionFeatures,
    measure: Callable[[torch.Tensor], RegionFeatures],
    fake_shape: torch.Size,
) -> torch.Tensor:
    """Target features ``(B, N_F, N_L)``: measured on a real image, or checked as given."""
    if not isinstance(target, torch.Tensor) or not target.is_floating_point():
        kind = f"dtype {target.dtype}" if isinstance(target, torch.Tensor) else type(target).__name__
        raise ValidationError(f"target must be a floating-point image or feature tensor, got {kind}.")
    if target.ndim != 3:  # an image (B, 1, *spatial): the same soft measurement, as a constant
        check_image(target, "target", batched=True, channels=1)
        if tuple(target.shape) != tuple(fake_shape):
            raise ShapeError(
                f"target image must have the shape of fake {tuple(fake_shape)}, got {tuple(target.shape)}. "
                "Pass features (B, N_F, N_L) instead to give requested target values."
            )
        with torch.no_grad():
            return measure(target.detach()).values
    like = got.values
    if tuple(target.shape) != tuple(like.shape):
        raise ShapeError(
            f"target features must have shape (B, N_F, N_L) = {tuple(like.shape)} (names={list(got.names)}), "
            f"got {tuple(target.shape)}. Pass an image (B, 1, *spatial) to compare against a real image instead."
        )
    if target.device != like.device:
        raise ValidationError(
            f"target is on {target.device} but fake is on {like.device}; move them together."
        )
    if not bool(torch.isfinite(target).all()):
        raise ValidationError("target features contain NaN or infinite values; replace them first.")
    return target.detach().to(like.dtype)
