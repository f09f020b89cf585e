"""Gaussian-mixture label-to-image synthesis (the SynthSeg-style, generator-free baseline).

No network and no weights: every label value gets a random intensity distribution, so a training
set sees each anatomy in random contrasts. The array form :class:`GaussianMixtureSynth` has no
MONAI/TorchIO dependency; it is registered as ``"gaussian_mixture"`` in the nnU-Net recipe registry
(TorchIO's ``RandomLabelsToImage`` is a per-sample CPU analogue of the first steps).

Per call, for each sample (all heavy work batched on the input's device):

1. every label value ``v`` gets a mean drawn uniformly in ``mean_range`` and a standard deviation in
   ``std_range``; the image is ``mean[label] + std[label] * N(0, 1)`` voxel-wise. Background (0),
   padding / negative values (nnU-Net's ``-1``) and ``ignore_label`` are one class, drawn like the
   others (``random_background=True``) or pinned to ``mean_range[0]`` without noise;
2. partial-volume blur: a Gaussian with a per-axis sigma drawn in ``sigma_range`` (voxels);
3. the image is rescaled to [0, 1] and multiplied by a smooth bias field ``exp(f)``, ``f`` a coarse
   ``bias_points**dims`` grid of N(0, s) values (``s`` uniform in ``[0, bias_strength]``) upsampled
   linearly to the image size;
4. the image is rescaled to [0, 1] again and gamma-transformed: ``y ** exp(g)``, ``g ~ N(0, gamma_std)``;
5. (off by default) acquisition-resolution simulation as SynthSeg does it (Billot et al. 2023, Medical Image
   Analysis 86:102789; ``SampleResolution``, ``blurring_sigma_for_downsampling``, ``DynamicGaussianBlur`` and
   ``MimicAcquisition`` in the BBillot/SynthSeg repository): an acquisition voxel size per spatial axis, in input
   voxels (with probability ``prob_iso`` every axis ``U(1, max_res_iso)``, otherwise one random axis
   ``U(1, max_res_aniso)``; with probability ``prob_full_res`` the input resolution), a slice thickness
   ``U(1, spacing)`` per axis, a Gaussian blur of sigma ``0.75 * thickness`` (``0.5`` on an axis kept at the input
   resolution) times ``U(1 / res_blur_range, res_blur_range)``, sampling on the coarse grid (nearest, every
   ``spacing``-th voxel) and linear interpolation back to the input grid. Each sample's operator is one small
   matrix per axis, applied batched (:func:`apply_axis_matrices`);
6. [0, 1] is mapped onto the output range: by default (``output_range="input"``) the *input image's own*
   per-sample [min, max], so data in Hounsfield units, CT-normalised or z-scored nnU-Net data keep their
   scale and the pipeline's normalisation afterwards sees values of the usual magnitude (the input image
   is only read for its min and max); ``"unit"`` keeps [0, 1], ``(low, high)`` maps to that range.

Labels are never changed: they are returned as they were given (the same object).

Randomness: one ``torch.Generator().manual_seed(seed)`` per sample draws every parameter on the host as
small tensors (blur sigmas, bias grid, gamma, the class table, a noise seed; the resolution draws come from a
second generator derived from the same seed, so enabling them leaves the other draws unchanged); they are
moved to the device once per batch. The voxel noise is drawn on the device from a per-sample device generator
seeded from the host draw (one call per sample), so the result depends only on the sample's own inputs and seed
(a batch gives what per-sample calls give) but differs between CPU and GPU. Sampling is split from application:
:meth:`GaussianMixtureSynth.sample_params` draws ``(seed, apply)``; :meth:`GaussianMixtureSynth.apply` is
pure given it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from synthaug._validate import check_positive
from synthaug.errors import LabelError, ValidationError
from synthaug.transforms.acquisition import (
    MAX_RES as _MAX_RES,
)
from synthaug.transforms.acquisition import (
    apply_axis_matrices,
    draw_resolution,
    resolution_matrix,
)
from synthaug.transforms.acquisition import (
    gaussian_blur as _gaussian_blur,
)
from synthaug.transforms.labels import check_image_label_batch
from synthaug.transforms.options import Options, OptionsTransform

__all__ = [
    "GaussianMixtureOptions",
    "GaussianMixtureParams",
    "GaussianMixtureSynth",
    "OUTPUT_RANGES",
    "apply_axis_matrices",
    "resolution_matrix",
]

OUTPUT_RANGES: tuple[str, ...] = ("input", "unit")
_MAX_LABEL = 2**16  # the class table has (largest label value + 1) rows per sample
_EPS = 1e-8
_RES_STREAM = 0x5EED_0F_AC9  # offset of the resolution draws' generator seed (a stream apart from the others)


@dataclass(frozen=True)
class GaussianMixtureParams:
    """Everything random about one call: replaying it gives the same output."""

    seed: int
    apply: bool


def _pair(name: str, value: Any, *, low: float | None = None, high: float | None = None) -> tuple[float, float]:
    """``value`` as a ``(lo, hi)`` float pair with ``lo <= hi`` (and inside [low, high] when given)."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be a pair (low, high) of numbers, got {value!r}.") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValidationError(f"{name} must be a finite pair (low, high) with low <= high, got {value!r}.")
    if (low is not None and lo < low) or (high is not None and hi > high):
        rng = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise ValidationError(f"{name} must lie in {rng}, got {value!r}.")
    return lo, hi


def _bc(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(B,)`` -> ``(B, 1, ...)`` broadcastable against ``like``."""
    return v.reshape(-1, *([1] * (like.ndim - 1)))


def _unit_rescale(x: torch.Tensor) -> torch.Tensor:
    """Per-sample min-max rescale of ``(B, 1, *sp)`` to [0, 1] (a constant sample becomes 0)."""
    flat = x.flatten(1)
    lo, hi = flat.amin(1), flat.amax(1)
    return (x - _bc(lo, x)) / _bc((hi - lo).clamp_min(_EPS), x)


@dataclass(frozen=True)
class GaussianMixtureOptions(Options):
    """Options of :class:`GaussianMixtureSynth` (and of its MONAI, TorchIO and recipe faces).

    Args:
        mean_range: per-class means are uniform in this range ([0, 1] scale before the final rescale).
        std_range: per-class standard deviations (voxel noise) are uniform in this range.
        random_background: draw the background class (0, negative values, ``ignore_label``) like any class;
            ``False`` pins it to ``mean_range[0]`` without noise (a dark, flat background).
        sigma_range: partial-volume blur sigma (voxels), drawn per spatial axis; ``(0, 0)`` disables it.
        bias_strength: largest standard deviation of the log bias field; 0 disables the bias field.
        bias_points: control points per axis of the coarse bias field (>= 2).
        gamma_std: standard deviation of the log gamma exponent; 0 disables gamma augmentation.
        output_range: ``"input"`` (each sample's own input [min, max]), ``"unit"`` ([0, 1]) or ``(low, high)``.
        ignore_label: a label value treated as background for the intensities (labels stay unchanged).
        max_res_iso: largest acquisition voxel size (in input voxels, >= 1) of the all-axes branch of the resolution
            simulation: every axis ``U(1, max_res_iso)`` independently, as SynthSeg's code draws it (its default 4
            at 1 mm); 1 disables that branch.
        max_res_aniso: largest slice spacing (input voxels, >= 1) of the one-axis branch: one random axis
            ``U(1, max_res_aniso)``, the others kept (SynthSeg's default 8). With both at 1 (the default) the
            resolution simulation is off.
        prob_iso: probability of the all-axes branch when both branches are enabled (SynthSeg's ``prob_iso`` 0.1).
        prob_full_res: probability of keeping the input resolution (only the 0.5-voxel blur), SynthSeg's
            ``prob_min`` 0.05.
        res_blur_range: the blur sigmas are multiplied by ``U(1 / res_blur_range, res_blur_range)`` per axis
            (SynthSeg's ``blur_range`` 1.03); 1 keeps them exact.
    """

    mean_range: tuple[float, float] = (0.0, 1.0)
    std_range: tuple[float, float] = (0.01, 0.1)
    random_background: bool = True
    sigma_range: tuple[float, float] = (0.0, 1.0)
    bias_strength: float = 0.3
    bias_points: int = 4
    gamma_std: float = 0.25
    output_range: str | tuple[float, float] = "input"
    ignore_label: int | None = None
    max_res_iso: float = 1.0
    max_res_aniso: float = 1.0
    prob_iso: float = 0.1
    prob_full_res: float = 0.05
    res_blur_range: float = 1.03

    @property
    def simulates_resolution(self) -> bool:
        """Whether the acquisition-resolution step runs (either branch enabled)."""
        return max(self.max_res_iso, self.max_res_aniso) > 1.0

    def validate(self) -> None:
        self._set("mean_range", _pair("mean_range", self.mean_range))
        self._set("std_range", _pair("std_range", self.std_range, low=0.0))
        self._set("random_background", bool(self.random_background))
        self._set("sigma_range", _pair("sigma_range", self.sigma_range, low=0.0, high=20.0))
        self._set("bias_strength", float(check_positive("bias_strength", float(self.bias_strength), allow_zero=True)))
        if isinstance(self.bias_points, bool) or not isinstance(self.bias_points, int) or not 2 <= self.bias_points <= 64:
            raise ValidationError(f"bias_points must be an integer in [2, 64], got {self.bias_points!r}.")
        self._set("gamma_std", float(check_positive("gamma_std", float(self.gamma_std), allow_zero=True)))
        self._set("output_range", _output_range(self.output_range))
        if self.ignore_label is not None and (isinstance(self.ignore_label, bool) or not isinstance(self.ignore_label, int)):
            raise ValidationError(f"ignore_label must be an integer label value or None, got {self.ignore_label!r}.")
        for name in ("max_res_iso", "max_res_aniso"):
            self._set(name, _number(name, getattr(self, name), low=1.0, high=_MAX_RES,
                                    hint="an acquisition voxel size in input voxels (1 = the input resolution)"))
        for name in ("prob_iso", "prob_full_res"):
            self._set(name, _number(name, getattr(self, name), low=0.0, high=1.0, hint="a probability"))
        self._set("res_blur_range", _number("res_blur_range", self.res_blur_range, low=1.0, high=2.0,
                                            hint="the blur jitter factor (1 = none)"))


def _number(name: str, value: Any, *, low: float, high: float, hint: str) -> float:
    """``value`` as a finite float in [low, high] (a clear error naming ``name`` otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ValidationError(f"{name} must be a number ({hint}), got {value!r}.")
    if not low <= float(value) <= high:
        raise ValidationError(f"{name} must lie in [{low}, {high}] ({hint}), got {value!r}.")
    return float(value)


def _output_range(value: Any) -> str | tuple[float, float]:
    if isinstance(value, str):
        if value not in OUTPUT_RANGES:
            raise ValidationError(f"output_range={value!r} is not one of {list(OUTPUT_RANGES)} or a pair (low, high).")
        return value
    low, high = _pair("output_range", value)
    if not low < high:
        raise ValidationError(f"output_range (low, high) needs low < high, got {value!r}.")
    return (low, high)


class GaussianMixtureSynth(OptionsTransform):
    """Synthesise a new image from a label map with a random Gaussian mixture (see the module docstring).

    Options: :class:`GaussianMixtureOptions`; ``prob`` is the probability that a call synthesises (otherwise
    image and label pass unchanged).

    Example:
        >>> synth = GaussianMixtureSynth(sigma_range=(0.0, 0.5))
        >>> image = torch.zeros(1, 16, 16); label = torch.zeros(1, 16, 16, dtype=torch.long)
        >>> label[:, 4:12, 4:12] = 1
        >>> new_image, same_label = synth.apply(image + torch.arange(16.0), label, GaussianMixtureParams(0, True))
        >>> new_image.shape == image.shape and same_label is label
        True
    """

    Options = GaussianMixtureOptions
    needs_foreground = False
    options: GaussianMixtureOptions

    def _setup(self) -> None:
        self._radius = math.ceil(3.0 * self.sigma_range[1])

    # ------------------------------------------------------------------ sampling
    def params_from_seed(self, seed: int, apply: bool = True) -> GaussianMixtureParams:
        return GaussianMixtureParams(int(seed), bool(apply))

    # ------------------------------------------------------------------ application
    def _draw(self, seed: int, dims: int, n_classes: int) -> tuple[torch.Tensor, ...]:
        """The host draws of one sample, in a fixed order (the class table last: its size varies)."""
        g = torch.Generator().manual_seed(int(seed))
        s_lo, s_hi = self.sigma_range
        sigmas = s_lo + torch.rand(dims, generator=g, dtype=torch.float64) * (s_hi - s_lo)
        strength = torch.rand((), generator=g, dtype=torch.float64) * self.bias_strength
        coarse = torch.randn((1,) + (self.bias_points,) * dims, generator=g, dtype=torch.float64) * strength
        log_gamma = torch.randn((), generator=g, dtype=torch.float64) * self.gamma_std
        noise_seed = int(torch.randint(0, 2**62, (), generator=g))
        m_lo, m_hi = self.mean_range
        d_lo, d_hi = self.std_range
        means = m_lo + torch.rand(n_classes, generator=g, dtype=torch.float64) * (m_hi - m_lo)
        stds = d_lo + torch.rand(n_classes, generator=g, dtype=torch.float64) * (d_hi - d_lo)
        if not self.random_background:
            means[0], stds[0] = m_lo, 0.0
        return sigmas, coarse, log_gamma, noise_seed, means, stds

    def _draw_resolution(self, seed: int, dims: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Acquisition spacing and blur sigma per axis (float64, ``(dims,)`` each), SynthSeg's scheme
        (:func:`~synthaug.transforms.acquisition.draw_resolution`), from a generator of its own derived from ``seed``."""
        o = self.options
        g = torch.Generator().manual_seed((int(seed) + _RES_STREAM) % 2**63)
        return draw_resolution(g, dims, max_res_iso=o.max_res_iso, max_res_aniso=o.max_res_aniso, prob_iso=o.prob_iso,
                               prob_full_res=o.prob_full_res, res_blur_range=o.res_blur_range)

    @torch.no_grad()
    def apply_batch(
        self, images: torch.Tensor, labels: torch.Tensor, *, seeds: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Batched synthesis: ``images`` (B, 1, *spatial) float, ``labels`` (B, 1, *spatial) integer; one seed
        per sample. Returns the new images (the input's device and dtype) and ``labels`` untouched (the same
        object).

        Sample i's output depends only on its own inputs and ``seeds[i]``, so a batch gives exactly what
        per-sample calls give. The images are read only for their per-sample min and max (``output_range="input"``).
        """
        lab = check_image_label_batch(images, labels, purpose="synthesise", allow_empty=True)
        b = images.shape[0]
        if len(seeds) != b:
            raise ValidationError(f"seeds must have one entry per sample ({b}), got {len(seeds)}.")
        device, dtype = images.device, images.dtype
        spatial, dims = tuple(images.shape[2:]), images.ndim - 2
        background = lab < 0
        if self.ignore_label is not None:
            background |= lab == self.ignore_label
        lab = torch.where(background, torch.zeros_like(lab), lab)
        top = lab.flatten(1).amax(1).tolist()  # one host sync: the size of each sample's class table
        if max(top) >= _MAX_LABEL:
            raise LabelError(
                f"label values go up to {max(top)}; GaussianMixtureSynth draws one intensity per value up to the "
                f"largest, so values must stay below {_MAX_LABEL}. Remap the labels to consecutive ids first."
            )
        draws = [self._draw(int(s), dims, int(t) + 1) for s, t in zip(seeds, top)]
        k = max(top) + 1
        table = torch.zeros(b, 2, k, dtype=torch.float64)
        for i, d in enumerate(draws):  # host-side copy into one padded table: B tiny rows
            table[i, 0, : d[4].numel()], table[i, 1, : d[5].numel()] = d[4], d[5]
        columns = [
            torch.stack([d[0] for d in draws]),                 # sigmas (B, dims)
            torch.stack([d[2] for d in draws])[:, None],        # log gamma (B, 1)
            torch.stack([d[1].flatten() for d in draws]),       # bias grid (B, points**dims)
            table.flatten(1),                                   # means, stds (B, 2k)
        ]
        n_small = sum(c.shape[1] for c in columns)
        if self.options.simulates_resolution:                    # per-axis operators (B, n_a * n_a) each
            res = [self._draw_resolution(int(s), dims) for s in seeds]
            columns += [torch.stack([resolution_matrix(spatial[a], float(sp[a]), float(sg[a])).flatten()
                                     for sp, sg in res]) for a in range(dims)]
        moved = torch.cat(columns, 1).to(device=device, dtype=torch.float32)  # the one host -> device move
        small = moved[:, :n_small]
        sigmas, log_gamma = small[:, :dims], small[:, dims]
        n_grid = self.bias_points**dims
        coarse = small[:, dims + 1 : dims + 1 + n_grid].reshape(b, 1, *(self.bias_points,) * dims)
        means, stds = small[:, dims + 1 + n_grid :].reshape(b, 2, k).unbind(1)
        # 1. Gaussian mixture: per-voxel noise from one device generator per sample (one call each)
        noise = torch.stack([
            torch.randn(spatial, generator=torch.Generator(device=device).manual_seed(d[3] ^ 0x5EED),
                        device=device, dtype=torch.float32)
            for d in draws
        ])[:, None]
        flat = lab.flatten(1)
        x = means.gather(1, flat).reshape(lab.shape) + stds.gather(1, flat).reshape(lab.shape) * noise
        # 2. partial-volume blur
        if self._radius > 0:
            x = _gaussian_blur(x, sigmas, self._radius)
        # 3. multiplicative smooth bias field
        x = _unit_rescale(x)
        if self.bias_strength > 0:
            mode = "bilinear" if dims == 2 else "trilinear"
            x = x * torch.exp(F.interpolate(coarse, size=spatial, mode=mode, align_corners=True))
        # 4. gamma
        x = _unit_rescale(x)
        if self.gamma_std > 0:
            x = x.clamp_min(0).pow(_bc(torch.exp(log_gamma), x))
        # 5. acquisition resolution (SynthSeg): blur, sample coarsely, interpolate back; one matrix per axis
        if self.options.simulates_resolution:
            offsets = [n_small + sum(n * n for n in spatial[:a]) for a in range(dims)]
            mats = [moved[:, o : o + n * n].reshape(b, n, n) for o, n in zip(offsets, spatial)]
            x = apply_axis_matrices(x, mats)
        # 6. output range
        if self.output_range == "input":
            ref = images.flatten(1).float()
            lo, hi = ref.amin(1), ref.amax(1)
            x = _bc(lo, x) + x * _bc(hi - lo, x)
        elif isinstance(self.output_range, tuple):
            low, high = self.output_range
            x = low + x * (high - low)
        return x.to(dtype), labels
