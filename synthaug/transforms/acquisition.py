"""Simulated acquisition: partial-volume blur, a smooth bias field and a coarser acquisition resolution.

The primitives (:func:`gaussian_blur`, :func:`resolution_matrix`, :func:`apply_axis_matrices`,
:func:`draw_resolution`) are the SynthSeg-style acquisition steps shared by
:class:`~synthaug.transforms.labels_to_image.GaussianMixtureSynth` (the non-learned baseline) and the
appearance-sampling mode of :class:`~synthaug.transforms.context_texture.ContextTextureSynth`, where a rendered
volume passes through them with probability ``acquisition_prob`` (:class:`AcquisitionOptions`), so that a
textured synthetic image also varies in sharpness, shading and slice thickness as real acquisitions do.

Per volume (when drawn): a Gaussian blur with sigma ``U(0, blur_max)`` voxels per spatial axis; a
multiplicative bias field ``exp(f)``, ``f`` a coarse ``4**dims`` grid of ``N(0, s)``, ``s ~ U(0, bias_max)``,
upsampled linearly (applied on the volume rescaled to [0, 1], then mapped back to the volume's own [min, max]);
SynthSeg's one-axis resolution branch: one random axis acquired at a spacing ``U(1, resolution_max)`` voxels with
a slice-thickness blur, sampled coarsely and interpolated back (:func:`draw_resolution`; probability 0.05 of the
full resolution). Every draw is made on the host from a generator seeded from the sample's seed on a stream of
its own, so turning the step on leaves every other draw of the calling transform unchanged; the volumes are
processed batched on their device, and a batch gives what per-sample calls give.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from synthaug._validate import check_range
from synthaug.errors import ValidationError
from synthaug.transforms.options import Options

__all__ = [
    "MAX_RES",
    "AcquisitionOptions",
    "apply_axis_matrices",
    "draw_resolution",
    "gaussian_blur",
    "resolution_matrix",
    "simulate_acquisition",
]

MAX_RES = 16.0  # largest simulated acquisition voxel size, in input voxels
_STREAM = 0xAC0_5EED  # offset of the acquisition draws' generator seed
_BIAS_POINTS = 4
_EPS = 1e-8


def _bc(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(B,)`` -> ``(B, 1, ...)`` broadcastable against ``like``."""
    return v.reshape(-1, *([1] * (like.ndim - 1)))


def gaussian_blur(x: torch.Tensor, sigmas: torch.Tensor, radius: int) -> torch.Tensor:
    """Separable Gaussian blur of ``x`` ``(B, 1, *sp)`` with per-sample, per-axis ``sigmas`` ``(B, dims)``.

    The kernel has the fixed half-width ``radius`` (from the largest allowed sigma, not the batch's) and is
    applied as a weighted sum of shifted copies (a loop over the ``2 * radius + 1`` taps, elementwise and
    batched), so a sample's result is bit-identical whatever else is in the batch; borders are replicated.
    """
    dims = x.ndim - 2
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    # sigma 0 -> a delta kernel (exp(-x^2 / tiny) underflows to 0 off the centre)
    kernels = torch.exp(-(offsets[None, None] ** 2) / (2 * sigmas[..., None].clamp_min(1e-3) ** 2))
    kernels = kernels / kernels.sum(-1, keepdim=True)  # (B, dims, 2r+1)
    for axis in range(dims):
        dim = 2 + axis
        n = x.shape[dim]
        pad = [0, 0] * dims
        pad[2 * (dims - 1 - axis)] = pad[2 * (dims - 1 - axis) + 1] = radius  # F.pad lists the last axis first
        xp = F.pad(x, pad, mode="replicate")
        w = kernels[:, axis]
        y = _bc(w[:, 0], x) * xp.narrow(dim, 0, n)
        for tap in range(1, 2 * radius + 1):
            y = y + _bc(w[:, tap], x) * xp.narrow(dim, tap, n)
        x = y
    return x


def resolution_matrix(n: int, spacing: float, sigma: float) -> torch.Tensor:
    """The ``(n, n)`` float64 operator of one axis of SynthSeg's acquisition simulation (``out = R @ x``).

    A Gaussian blur of ``sigma`` voxels (replicated border, truncated at 3 sigma), sampling on the coarse grid of
    ``m = max(1, int(n / spacing))`` points at input positions ``j * n / m`` (nearest voxel), and linear
    interpolation back to the input grid (input voxel ``i`` sits at coarse position ``i * m / n``, clamped to the
    last coarse point), as ``MimicAcquisition`` does. ``spacing = 1`` and ``sigma = 0`` give the identity.
    Built in O(n^2) (the sampling and interpolation are row gathers, not matrix products).

    >>> bool(torch.equal(resolution_matrix(5, 1.0, 0.0), torch.eye(5, dtype=torch.float64)))
    True
    """
    if n < 1 or spacing < 1.0 or sigma < 0.0:
        raise ValidationError(f"resolution_matrix needs n >= 1, spacing >= 1, sigma >= 0; got {n}, {spacing}, {sigma}.")
    idx = torch.arange(n)
    blur = torch.zeros(n, n, dtype=torch.float64)
    radius = math.ceil(3.0 * sigma) if sigma > 0 else 0
    taps = torch.arange(-radius, radius + 1)
    weights = torch.exp(-(taps.double() ** 2) / (2.0 * max(sigma, 1e-3) ** 2))
    weights = weights / weights.sum()
    cols = (idx[:, None] + taps[None]).clamp(0, n - 1)
    blur.index_put_((idx[:, None].expand_as(cols), cols), weights[None].expand(n, -1).clone(), accumulate=True)
    m = max(1, int(n / spacing))
    if m == n:
        return blur
    picked = torch.floor(torch.arange(m, dtype=torch.float64) * n / m + 0.5).long().clamp(0, n - 1)
    coarse = blur[picked]                                            # (m, n): blur, then sample
    pos = (torch.arange(n, dtype=torch.float64) * m / n).clamp(max=m - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=m - 1)
    frac = (pos - lo.double())[:, None]
    return (1.0 - frac) * coarse[lo] + frac * coarse[hi]             # (n, n): interpolate back


def apply_axis_matrices(x: torch.Tensor, matrices: Sequence[torch.Tensor | None]) -> torch.Tensor:
    """Apply one ``(B, n_a, n_a)`` matrix per sample along each spatial axis ``a`` of ``x`` ``(B, C, *spatial)``.

    ``matrices[a]`` (or None to leave axis ``a``) maps the axis' samples: ``out[..., i, ...] = sum_j M[b, i, j]
    x[..., j, ...]``. One batched matrix product per axis; each sample only meets its own matrices, so a batch
    gives what per-sample calls give up to float rounding: the BLAS kernel may sum in another order for another
    batch size (bit-identical on many CPUs; a few ulps apart on others, e.g. 6e-5 on values of a few hundred in
    3D). Offline expansion renders one sample per call, so its bytes do not depend on this.
    """
    for axis, mat in enumerate(matrices):
        if mat is None:
            continue
        n = x.shape[2 + axis]
        moved = x.movedim(2 + axis, -1)
        right = mat.transpose(1, 2).reshape(mat.shape[0], *([1] * (x.ndim - 3)), n, n).to(x.dtype)
        x = (moved @ right).movedim(-1, 2 + axis)
    return x


def draw_resolution(g: torch.Generator, dims: int, *, max_res_iso: float, max_res_aniso: float, prob_iso: float,
                    prob_full_res: float, res_blur_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Acquisition spacing and blur sigma per axis (float64, ``(dims,)`` each), SynthSeg's scheme.

    With probability ``prob_iso`` every axis ``U(1, max_res_iso)`` (when both branches are enabled), otherwise one
    random axis ``U(1, max_res_aniso)``; with probability ``prob_full_res`` the input resolution. Slice thickness
    ``U(1, spacing)``, blur sigma ``0.75 * thickness`` (0.5 on an axis kept at the input resolution) times
    ``U(1 / res_blur_range, res_blur_range)``. Drawn from ``g`` in a fixed order, whatever the branch.
    """
    u_branch = float(torch.rand((), generator=g, dtype=torch.float64))
    iso = 1.0 + torch.rand(dims, generator=g, dtype=torch.float64) * (max_res_iso - 1.0)
    aniso = 1.0 + torch.rand((), generator=g, dtype=torch.float64) * (max_res_aniso - 1.0)
    axis = int(torch.randint(0, dims, (), generator=g))
    u_full = float(torch.rand((), generator=g, dtype=torch.float64))
    u_thick = torch.rand(dims, generator=g, dtype=torch.float64)
    u_jitter = torch.rand(dims, generator=g, dtype=torch.float64)
    one_axis = torch.ones(dims, dtype=torch.float64)
    one_axis[axis] = aniso
    if max_res_iso > 1.0 and max_res_aniso > 1.0:
        spacing = iso if u_branch < prob_iso else one_axis
    else:
        spacing = iso if max_res_iso > 1.0 else one_axis
    if u_full < prob_full_res:
        spacing = torch.ones(dims, dtype=torch.float64)
    thickness = 1.0 + u_thick * (spacing - 1.0)
    sigma = torch.where(spacing == 1.0, torch.full_like(thickness, 0.5), 0.75 * thickness)
    lo, hi = 1.0 / res_blur_range, res_blur_range
    return spacing, sigma * (lo + u_jitter * (hi - lo))


@dataclass(frozen=True)
class AcquisitionOptions(Options):
    """Simulated-acquisition options (a base of the records of transforms that offer the step).

    Args:
        acquisition_prob: probability that a synthesised volume passes through the simulated acquisition (blur,
            bias field, coarser resolution; :mod:`synthaug.transforms.acquisition`); 0 (the default) never.
        blur_max: largest partial-volume blur sigma, voxels (drawn ``U(0, blur_max)`` per axis).
        bias_max: largest standard deviation of the log bias field (drawn ``U(0, bias_max)``); 0 disables it.
        resolution_max: largest simulated slice spacing, input voxels (one random axis ``U(1, resolution_max)``,
            SynthSeg's anisotropic branch); 1 disables it.
    """

    acquisition_prob: float = 0.0
    blur_max: float = 1.0
    bias_max: float = 0.3
    resolution_max: float = 4.0

    def validate(self) -> None:
        super().validate()
        self._set("acquisition_prob", float(check_range("acquisition_prob", float(self.acquisition_prob), 0.0, 1.0)))
        self._set("blur_max", float(check_range("blur_max", float(self.blur_max), 0.0, 5.0)))
        self._set("bias_max", float(check_range("bias_max", float(self.bias_max), 0.0, 2.0)))
        self._set("resolution_max", float(check_range("resolution_max", float(self.resolution_max), 1.0, MAX_RES)))

    @property
    def simulates_acquisition(self) -> bool:
        return self.acquisition_prob > 0.0


@torch.no_grad()
def simulate_acquisition(x: torch.Tensor, seeds: Sequence[int], options: AcquisitionOptions) -> torch.Tensor:
    """``x`` ``(B, 1, *spatial)`` (2D or 3D) through the simulated acquisition, each sample with probability
    ``options.acquisition_prob`` from its own seed (module docstring); samples not drawn are returned unchanged
    (bit for bit). The output keeps each sample's [min, max] and the input's device and dtype."""
    if x.ndim not in (4, 5) or x.shape[1] != 1:
        raise ValidationError(f"simulate_acquisition takes (B, 1, H, W) or (B, 1, D, H, W), got {tuple(x.shape)}.")
    b, spatial, dims = x.shape[0], tuple(x.shape[2:]), x.ndim - 2
    if len(seeds) != b:
        raise ValidationError(f"seeds must have one entry per sample ({b}), got {len(seeds)}.")
    o = options
    if not o.simulates_acquisition:
        return x
    gens = [torch.Generator().manual_seed((int(s) + _STREAM) % 2**63) for s in seeds]
    # the host draws of each sample, in a fixed order
    use = torch.tensor([float(torch.rand((), generator=g)) < o.acquisition_prob for g in gens])
    if not bool(use.any()):
        return x
    sigmas = torch.stack([torch.rand(dims, generator=g, dtype=torch.float64) * o.blur_max for g in gens])
    strength = torch.stack([torch.rand((), generator=g, dtype=torch.float64) * o.bias_max for g in gens])
    coarse = torch.stack([torch.randn((1,) + (_BIAS_POINTS,) * dims, generator=g, dtype=torch.float64)
                          for g in gens]) * _bc(strength, torch.zeros(b, 1, *(_BIAS_POINTS,) * dims))
    res = [draw_resolution(g, dims, max_res_iso=1.0, max_res_aniso=o.resolution_max, prob_iso=0.0,
                           prob_full_res=0.05, res_blur_range=1.03) for g in gens]
    device = x.device
    y = x.float()
    flat = y.flatten(1)
    lo, hi = flat.amin(1), flat.amax(1)
    radius = math.ceil(3.0 * o.blur_max)
    if radius > 0:
        y = gaussian_blur(y, sigmas.to(device=device, dtype=torch.float32), radius)
    if o.bias_max > 0:
        unit = (y - _bc(lo, y)) / _bc((hi - lo).clamp_min(_EPS), y)
        mode = "bilinear" if dims == 2 else "trilinear"
        field = torch.exp(F.interpolate(coarse.to(device=device, dtype=torch.float32), size=spatial, mode=mode,
                                        align_corners=True))
        unit = unit * field
        u = unit.flatten(1)
        u_lo, u_hi = u.amin(1), u.amax(1)
        unit = (unit - _bc(u_lo, unit)) / _bc((u_hi - u_lo).clamp_min(_EPS), unit)
        y = _bc(lo, y) + unit * _bc(hi - lo, y)
    if o.resolution_max > 1.0:
        mats = [torch.stack([resolution_matrix(spatial[a], float(sp[a]), float(sg[a])) for sp, sg in res]).to(device)
                for a in range(dims)]
        y = apply_axis_matrices(y, mats)
    keep = _bc(use.to(device), y)
    return torch.where(keep, y, x.float()).to(x.dtype)
