"""Appearance randomisation of real images: every labelled region gets a random transfer function.

The targets a domain-randomised ConText-GAN trains on are *real* images whose per-region appearance is
redrawn: region ``l`` of sample ``b`` is passed through a random piecewise-linear curve ``f_bl`` whose knots
sit at the region's own intensity quantiles (levels ``0, 1/K, ..., 1``), so the region's texture and its
internal edges stay real while its intensity mapping changes:

- ``"increasing"``: monotone increasing curve (voxel rank order kept);
- ``"decreasing"``: monotone decreasing (an inversion: rank order reversed);
- ``"non_monotone"``: random knot values (folds the histogram, e.g. mid-grey becomes the brightest).

The curve output ``u`` is then standardised per region and rescaled::

    out = m_bl + c_bl * s_bl * (u - mean_l(u)) / std_l(u) + sigma_bl * eps,     clamped to [-1, 1]

with ``m_bl`` the new region mean, ``s_bl`` the region's *original* standard deviation, ``c_bl`` a random
contrast factor (log-uniform) and ``sigma_bl`` an added Gaussian noise level. Labels are never touched and
regions are remapped independently, so label boundaries stay where they are (their contrast changes).

Everything random comes from one integer seed per sample (:class:`AppearanceParams`); the heavy part is
vectorised over batch, regions and voxels (one sort, gathers, ``index_add``), only the per-sample draws of a
few numbers and of the noise field use each sample's own ``torch.Generator`` (so a batch equals the samples
processed one by one, exactly).

>>> import torch
>>> image = torch.linspace(-1, 1, 64).reshape(1, 1, 8, 8)
>>> labels = torch.zeros(1, 8, 8, dtype=torch.long); labels[:, 2:6, 2:6] = 1
>>> params = sample_appearance(1, generator=torch.Generator().manual_seed(0))
>>> out = remap_appearance(image, labels, params, n_labels=2)
>>> out.shape, bool(out.abs().max() <= 1)
(torch.Size([1, 1, 8, 8]), True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from synthaug._validate import check_probability
from synthaug.errors import ShapeError, ValidationError
from synthaug.features.region import check_image_and_labels

__all__ = [
    "KINDS",
    "AppearanceRanges",
    "AppearanceParams",
    "RegionAppearance",
    "sample_appearance",
    "draw_region_appearance",
    "remap_appearance",
]

#: Transfer-function kinds, in the order of :attr:`AppearanceRanges.kind_probs` and of ``RegionAppearance.kind``.
KINDS: tuple[str, ...] = ("increasing", "decreasing", "non_monotone")

_MAX_LABELS = 4096


def _pair(name: str, value: Any, *, low: float, high: float) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be a pair (low, high) of numbers, got {value!r}.") from None
    if not (math.isfinite(a) and math.isfinite(b) and low <= a <= b <= high):
        raise ValidationError(f"{name} must satisfy {low} <= low <= high <= {high}, got {value!r}.")
    return (a, b)


@dataclass(frozen=True)
class AppearanceRanges:
    """The documented random distribution of region appearances (all intensities on the [-1, 1] scale).

    Args:
        kind_probs: probabilities of the increasing / decreasing (inversion) / non-monotone curve per region.
        background_kind_probs: the same for region 0. Default increasing only: the background mixes air,
            fat and unlabelled tissue, and mean and entropy cannot tell a generator which of them an
            inverted curve made bright; air darkest is also what CT and MR share.
        knots: number of curve segments; knots at the region's quantiles ``0, 1/knots, ..., 1``.
        min_step: smallest knot-to-knot increment of a monotone curve relative to the mean increment
            (0 allows flat segments that erase texture; 1 makes the curve linear).
        mean_range: new region mean, uniform in this range.
        contrast_range: factor on the region's own standard deviation, log-uniform in this range.
        noise_range: standard deviation of the added Gaussian noise, uniform in this range.
        remap_background: remap region 0 like every other region (``False`` keeps it as it is).
    """

    kind_probs: tuple[float, float, float] = (0.5, 0.3, 0.2)
    background_kind_probs: tuple[float, float, float] = (1.0, 0.0, 0.0)
    knots: int = 4
    min_step: float = 0.3
    mean_range: tuple[float, float] = (-0.85, 0.85)
    contrast_range: tuple[float, float] = (0.25, 3.0)
    noise_range: tuple[float, float] = (0.0, 0.08)
    remap_background: bool = True

    def __post_init__(self) -> None:
        for name in ("kind_probs", "background_kind_probs"):
            value = getattr(self, name)
            try:
                probs = tuple(float(p) for p in value)
            except (TypeError, ValueError):
                probs = ()
            if len(probs) != len(KINDS) or any(p < 0 or not math.isfinite(p) for p in probs) or sum(probs) <= 0:
                raise ValidationError(
                    f"{name} must hold {len(KINDS)} non-negative numbers for {KINDS} with a positive sum, got {value!r}."
                )
            object.__setattr__(self, name, probs)
        if isinstance(self.knots, bool) or not isinstance(self.knots, int) or not 1 <= self.knots <= 32:
            raise ValidationError(f"knots must be an integer in [1, 32], got {self.knots!r}.")
        if not 0.0 <= float(self.min_step) <= 1.0:
            raise ValidationError(f"min_step must lie in [0, 1], got {self.min_step!r}.")
        object.__setattr__(self, "mean_range", _pair("mean_range", self.mean_range, low=-1.0, high=1.0))
        lo, hi = _pair("contrast_range", self.contrast_range, low=0.0, high=100.0)
        if lo <= 0:
            raise ValidationError(f"contrast_range must be positive (it is log-uniform), got {self.contrast_range!r}.")
        object.__setattr__(self, "contrast_range", (lo, hi))
        object.__setattr__(self, "noise_range", _pair("noise_range", self.noise_range, low=0.0, high=1.0))
        object.__setattr__(self, "remap_background", bool(self.remap_background))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_card(cls, card: Any) -> AppearanceRanges:
        """The ranges a generator was trained with (``card.training["config"]["appearance"]``; defaults if absent)."""
        training = getattr(card, "training", None) or {}
        return cls.from_dict(dict(training.get("config", {}).get("appearance", {})))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AppearanceRanges:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValidationError(f"unknown appearance option(s) {unknown}; known: {sorted(known)}.")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@dataclass(frozen=True)
class AppearanceParams:
    """Replayable record of one randomisation: one integer seed per sample, whether to remap it, the ranges.

    ``remap_appearance(image, labels, params, n_labels=...)`` is a pure function of it.
    """

    seeds: tuple[int, ...]
    apply: tuple[bool, ...]
    ranges: AppearanceRanges = AppearanceRanges()

    def __post_init__(self) -> None:
        if len(self.seeds) != len(self.apply):
            raise ValidationError(f"seeds ({len(self.seeds)}) and apply ({len(self.apply)}) must have one entry per sample.")
        for s in self.seeds:
            if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**63:
                raise ValidationError(f"seeds must be integers in [0, 2**63), got {s!r}.")

    def __len__(self) -> int:
        return len(self.seeds)

    def select(self, index: int) -> AppearanceParams:
        """The record of sample ``index`` alone (replays that sample exactly)."""
        return AppearanceParams((self.seeds[index],), (self.apply[index],), self.ranges)

    def to_dict(self) -> dict[str, Any]:
        return {"seeds": list(self.seeds), "apply": list(self.apply), "ranges": self.ranges.to_dict()}


@dataclass(frozen=True, eq=False)
class RegionAppearance:
    """The per-region draws a record expands to (``(B, N_L)`` unless noted), on the image's device/dtype.

    ``kind`` indexes :data:`KINDS`; ``curve`` ``(B, N_L, knots + 1)`` holds the curve's values (in [0, 1]) at
    the region's quantile knots; ``mean``/``contrast``/``noise`` as in the module docstring; ``active`` is
    False where the region keeps its appearance (sample not applied, or background with
    ``remap_background=False``); ``noise_seeds`` one per sample.
    """

    kind: torch.Tensor
    curve: torch.Tensor
    mean: torch.Tensor
    contrast: torch.Tensor
    noise: torch.Tensor
    active: torch.Tensor
    noise_seeds: tuple[int, ...]


def sample_appearance(
    batch: int, *, generator: torch.Generator, ranges: AppearanceRanges = AppearanceRanges(), prob: float = 1.0
) -> AppearanceParams:
    """Draw the record of ``batch`` samples from ``generator``: each is remapped with probability ``prob``."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValidationError(f"batch must be a positive integer, got {batch!r}.")
    if not isinstance(generator, torch.Generator):
        raise ValidationError(f"generator must be a torch.Generator, got {type(generator).__name__}.")
    if not isinstance(ranges, AppearanceRanges):
        raise ValidationError(f"ranges must be an AppearanceRanges record, got {type(ranges).__name__}.")
    check_probability("prob", prob)
    apply = (torch.rand(batch, generator=generator) < prob).tolist()
    seeds = torch.randint(0, 2**62, (batch,), generator=generator).tolist()
    return AppearanceParams(tuple(int(s) for s in seeds), tuple(bool(a) for a in apply), ranges)


def _draw_one(seed: int, n_labels: int, r: AppearanceRanges) -> tuple[torch.Tensor, ...]:
    """The host draws of one sample, in a fixed order (kind, curve, mean, contrast, noise, noise seed)."""
    g = torch.Generator().manual_seed(seed)
    k = r.knots
    kind = torch.multinomial(torch.tensor(r.kind_probs), n_labels, replacement=True, generator=g)
    kind[0] = torch.multinomial(torch.tensor(r.background_kind_probs), 1, generator=g)[0]
    steps = r.min_step + (1.0 - r.min_step) * torch.rand(n_labels, k, generator=g, dtype=torch.float64)
    rising = torch.cat([torch.zeros(n_labels, 1, dtype=torch.float64), steps.cumsum(1)], dim=1)
    rising = rising / rising[:, -1:].clamp_min(1e-12)  # 0 .. 1, increasing
    folded = torch.rand(n_labels, k + 1, generator=g, dtype=torch.float64)
    curve = torch.where((kind == 0)[:, None], rising, torch.where((kind == 1)[:, None], 1.0 - rising, folded))
    u = torch.rand(n_labels, 3, generator=g, dtype=torch.float64)
    mean = r.mean_range[0] + u[:, 0] * (r.mean_range[1] - r.mean_range[0])
    lc = (math.log(r.contrast_range[0]), math.log(r.contrast_range[1]))
    contrast = torch.exp(lc[0] + u[:, 1] * (lc[1] - lc[0]))
    noise = r.noise_range[0] + u[:, 2] * (r.noise_range[1] - r.noise_range[0])
    noise_seed = torch.randint(0, 2**62, (1,), generator=g)
    return kind, curve, mean, contrast, noise, noise_seed


def draw_region_appearance(
    params: AppearanceParams,
    *,
    n_labels: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> RegionAppearance:
    """Expand a record to its per-region draws (deterministic: same record, same draws)."""
    if not isinstance(params, AppearanceParams):
        raise ValidationError(f"params must be an AppearanceParams record, got {type(params).__name__}.")
    if isinstance(n_labels, bool) or not isinstance(n_labels, int) or not 1 <= n_labels <= _MAX_LABELS:
        raise ValidationError(f"n_labels must be an integer in [1, {_MAX_LABELS}], got {n_labels!r}.")
    draws = [_draw_one(s, n_labels, params.ranges) for s in params.seeds]  # a few numbers per sample
    kind, curve, mean, contrast, noise, nseed = (torch.stack(col) for col in zip(*draws, strict=True))
    active = torch.tensor(params.apply, dtype=torch.bool)[:, None].expand(-1, n_labels).clone()
    if not params.ranges.remap_background:
        active[:, 0] = False
    f = {"dtype": dtype, "device": device}
    return RegionAppearance(
        kind=kind.to(device), curve=curve.to(**f), mean=mean.to(**f), contrast=contrast.to(**f), noise=noise.to(**f),
        active=active.to(device), noise_seeds=tuple(int(s) for s in nseed.flatten().tolist()),
    )


def _region_quantile_knots(flat: torch.Tensor, index: torch.Tensor, n_regions: int, knots: int) -> torch.Tensor:
    """``(n_regions, knots + 1)`` quantiles (levels 0, 1/knots, ..., 1; nearest rank) of each region's voxels."""
    values, order = torch.sort(flat)
    by_region = torch.sort(index[order], stable=True).indices  # regions in order, values sorted within
    sorted_values = values[by_region]
    counts = torch.bincount(index, minlength=n_regions)
    starts = counts.cumsum(0) - counts
    levels = torch.linspace(0.0, 1.0, knots + 1, device=flat.device, dtype=torch.float64)
    offset = torch.round(levels[None, :] * (counts - 1).clamp_min(0)[:, None].to(torch.float64)).long()
    pos = (starts[:, None] + offset).clamp(0, flat.numel() - 1)
    return sorted_values[pos]


@torch.no_grad()
def remap_appearance(
    image: torch.Tensor,
    labels: torch.Tensor,
    params: AppearanceParams,
    *,
    n_labels: int,
    means: torch.Tensor | None = None,
) -> torch.Tensor:
    """Remap every region of ``image`` (B, 1, *spatial) in [-1, 1] with the record's random transfer functions.

    Args:
        image: normalised images, 2D or 3D spatial; dtype/device are kept.
        labels: ``(B, *spatial)`` or ``(B, 1, *spatial)`` integer map with values in ``0..n_labels-1``
            (returned untouched by callers: this function never changes labels).
        params: one record entry per sample (:func:`sample_appearance`).
        means: optional ``(B, N_L)`` region means that replace the record's drawn ``mean`` where finite
            (e.g. the simulated MR means of :mod:`synthaug.appearance.physics`).

    Returns the remapped image, same shape/dtype/device, values in [-1, 1]; regions that are not active
    (see :class:`RegionAppearance`) keep their voxels bit for bit.
    """
    image, lab = check_image_and_labels(image, labels, n_labels=n_labels)
    if not image.is_floating_point():
        raise ValidationError(f"image must be floating point (normalised to [-1, 1]), got {image.dtype}.")
    b = image.shape[0]
    if len(params) != b:
        raise ShapeError(f"params holds {len(params)} sample(s) but the batch has {b}; sample one entry per image.")
    ra = draw_region_appearance(params, n_labels=n_labels, dtype=image.dtype, device=image.device)
    mean = ra.mean
    if means is not None:
        if tuple(means.shape) != (b, n_labels):
            raise ShapeError(f"means must have shape (B, N_L) = {(b, n_labels)}, got {tuple(means.shape)}.")
        means = means.to(image.device, image.dtype)
        mean = torch.where(torch.isfinite(means), means, mean)
    k = params.ranges.knots
    n_regions = b * n_labels
    x = image.reshape(-1)
    index = (lab.reshape(b, -1) + torch.arange(b, device=image.device)[:, None] * n_labels).reshape(-1)
    knots_x = _region_quantile_knots(x, index, n_regions, k).reshape(-1)  # (R * (K+1),)
    knots_y = ra.curve.reshape(-1).to(x.dtype)
    base = index * (k + 1)
    seg = torch.zeros_like(index)
    for j in range(1, k):  # segment of each voxel: interior knots at or below it (loop over knots, K <= 32)
        seg += (x >= knots_x[base + j]).long()
    x0, x1 = knots_x[base + seg], knots_x[base + seg + 1]
    y0, y1 = knots_y[base + seg], knots_y[base + seg + 1]
    width = x1 - x0
    t = torch.where(width > 1e-12, (x - x0) / torch.where(width > 1e-12, width, torch.ones_like(width)), torch.zeros_like(x))
    u = y0 + t.clamp(0, 1) * (y1 - y0)

    count = torch.bincount(index, minlength=n_regions).to(image.dtype).clamp_min(1)

    def region_mean(v: torch.Tensor) -> torch.Tensor:
        return v.new_zeros(n_regions).index_add(0, index, v) / count

    mu_x = region_mean(x)
    sd_x = region_mean((x - mu_x[index]).square()).sqrt()
    mu_u = region_mean(u)
    sd_u = region_mean((u - mu_u[index]).square()).sqrt()
    gain = ra.contrast.reshape(-1) * sd_x / sd_u.clamp_min(1e-3)
    out = mean.reshape(-1)[index] + (u - mu_u[index]) * gain[index]
    sigma = ra.noise.reshape(-1)[index]
    per_sample = x.numel() // b
    eps = torch.stack([  # per-sample streams: a batch equals its samples one by one
        torch.randn(per_sample, generator=torch.Generator(device=image.device).manual_seed(s), device=image.device,
                    dtype=image.dtype)
        for s in ra.noise_seeds
    ]).reshape(-1)
    out = (out + sigma * eps).clamp(-1.0, 1.0)
    active = ra.active.reshape(-1)[index]
    return torch.where(active, out, x).reshape(image.shape)
