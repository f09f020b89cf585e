"""Per-region feature requests for a ConText-GAN generator, drawn from an appearance source.

A generator trained on appearance-randomised targets (``ContextConfig(appearance_prob > 0)``) renders any
per-region appearance inside its randomised range. These functions give a transform the requests
``(B, N_F, N_L)`` (normalised 0..1 features, the generator's input) for one of two sources:

- **randomised** (:func:`appearance_requests`): the features of the sample's own (real, normalised) image
  after a random per-region transfer function (:func:`synthaug.appearance.remap.remap_appearance`): exactly
  the training distribution of the DR generators;
- **physics prior** (:func:`physics_requests`): the features of a *simulated* MR rendering of the label map
  (:func:`synthaug.appearance.physics.simulate_abdominal_mr`, super-class vocabulary), normalised with the
  0.5-99.5 percentile convention; :func:`physics_region_means` gives its region means, e.g. as ``means`` of
  :func:`remap_appearance` (the physics prior as one appearance source of the randomisation).

Both are pure given their records (:class:`synthaug.appearance.remap.AppearanceParams`,
:class:`PhysicsDraw`), which are drawn with an explicit ``torch.Generator``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from synthaug._validate import check_choice
from synthaug.appearance.physics import SUPERCLASS_NAMES, simulate_abdominal_mr
from synthaug.appearance.remap import AppearanceParams, remap_appearance
from synthaug.data.abdominal_tissues import FIELDS_T
from synthaug.data.mr_simulator import abdominal_presets
from synthaug.errors import ValidationError
from synthaug.features import normalise_features, region_features
from synthaug.features.checks import check_label_map
from synthaug.intensity import IntensityConvention
from synthaug.weights.card import FeatureStats

__all__ = [
    "PhysicsDraw",
    "measure_requests",
    "appearance_requests",
    "sample_physics",
    "render_physics",
    "physics_requests",
    "physics_region_means",
    "clip_requests",
    "check_requests",
]

#: How simulated MR is mapped to the generators' [-1, 1] scale (the MR models' convention).
PHYSICS_INTENSITY = IntensityConvention.percentile(0.5, 99.5)


def measure_requests(
    image: torch.Tensor, labels: torch.Tensor, *, n_labels: int, names: Sequence[str], bins: int = 32
) -> torch.Tensor:
    """Normalised (0..1) region features ``(B, N_F, N_L)`` of ``image`` in [-1, 1]: what a generator is asked for."""
    rf = region_features(image, labels, n_labels=n_labels, names=tuple(names), bins=bins, value_range=(-1.0, 1.0))
    return (normalise_features(rf.values, rf.names, value_range=(-1.0, 1.0), bins=bins) / 100.0).clamp(0, 1)


def appearance_requests(
    image: torch.Tensor,
    labels: torch.Tensor,
    params: AppearanceParams,
    *,
    n_labels: int,
    names: Sequence[str],
    bins: int = 32,
) -> torch.Tensor:
    """Requests measured on the image remapped with ``params`` (image normalised to [-1, 1], (B, 1, *spatial))."""
    return measure_requests(
        remap_appearance(image, labels, params, n_labels=n_labels), labels, n_labels=n_labels, names=names, bins=bins
    )


@dataclass(frozen=True)
class PhysicsDraw:
    """Replayable record of physics-prior renderings: per sample a simulation seed, a contrast and a field."""

    seeds: tuple[int, ...]
    contrasts: tuple[str, ...]
    fields_t: tuple[float, ...]

    def __post_init__(self) -> None:
        if not len(self.seeds) == len(self.contrasts) == len(self.fields_t):
            raise ValidationError("PhysicsDraw needs one seed, contrast and field per sample.")
        for c, f in zip(self.contrasts, self.fields_t, strict=True):
            if f not in FIELDS_T:
                raise ValidationError(f"PhysicsDraw field {f!r} is not one of {FIELDS_T}.")
            check_choice("contrast", c, tuple(abdominal_presets(f)))

    def __len__(self) -> int:
        return len(self.seeds)


def sample_physics(
    batch: int,
    *,
    generator: torch.Generator,
    contrasts: Sequence[str] = ("T1w", "T2w", "in_phase", "opposed_phase"),
    fields_t: Sequence[float] = FIELDS_T,
) -> PhysicsDraw:
    """Draw per sample a contrast (uniform over ``contrasts``), a field (uniform over ``fields_t``) and a seed."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValidationError(f"batch must be a positive integer, got {batch!r}.")
    contrasts, fields_t = tuple(contrasts), tuple(float(f) for f in fields_t)
    if not contrasts or not fields_t:
        raise ValidationError("contrasts and fields_t must each name at least one option.")
    c = torch.randint(len(contrasts), (batch,), generator=generator).tolist()
    f = torch.randint(len(fields_t), (batch,), generator=generator).tolist()
    s = torch.randint(0, 2**31 - 1, (batch,), generator=generator).tolist()
    return PhysicsDraw(tuple(int(x) for x in s), tuple(contrasts[i] for i in c), tuple(fields_t[i] for i in f))


def render_physics(labels: torch.Tensor, draw: PhysicsDraw, **options) -> torch.Tensor:
    """Simulated MR of each label map (super-class ids), normalised to [-1, 1]: ``(B, 1, *spatial)``.

    ``options`` go to :func:`synthaug.appearance.physics.simulate_abdominal_mr` (noise, bias, blood, ...).
    Rendering runs in numpy on the host, one sample at a time; the result follows the labels' device.
    """
    lab = check_label_map(labels, n_labels=len(SUPERCLASS_NAMES))
    if len(draw) != lab.shape[0]:
        raise ValidationError(f"draw holds {len(draw)} sample(s) but labels have {lab.shape[0]}.")
    host = lab.cpu().numpy().astype(np.int16)
    out = []
    for i in range(lab.shape[0]):  # host-side simulation, one label map at a time
        sim = simulate_abdominal_mr(host[i], seed=draw.seeds[i], contrasts=(draw.contrasts[i],), field_t=draw.fields_t[i],
                                    **options)
        img = torch.from_numpy(sim.images[draw.contrasts[i]])
        out.append(PHYSICS_INTENSITY.normalise(img, PHYSICS_INTENSITY.fit(img)))
    return torch.stack(out)[:, None].to(labels.device)


def physics_requests(
    labels: torch.Tensor, draw: PhysicsDraw, *, names: Sequence[str], bins: int = 32, **options
) -> torch.Tensor:
    """Requests ``(B, N_F, 9)`` measured on the simulated MR of each label map (physics prior)."""
    n = len(SUPERCLASS_NAMES)
    return measure_requests(render_physics(labels, draw, **options), labels, n_labels=n, names=names, bins=bins)


def physics_region_means(labels: torch.Tensor, draw: PhysicsDraw, **options) -> torch.Tensor:
    """Region means ``(B, 9)`` on the [-1, 1] scale of the simulated MR (NaN for absent regions)."""
    n = len(SUPERCLASS_NAMES)
    img = render_physics(labels, draw, **options)
    rf = region_features(img, labels, n_labels=n, names=("mean",), value_range=(-1.0, 1.0))
    return torch.where(rf.present, rf.values[:, 0], torch.full_like(rf.values[:, 0], float("nan")))


def _card_bounds(stats: FeatureStats, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(stats, FeatureStats):
        raise ValidationError(f"stats must be a card's feature statistics (card.features.stats), got {type(stats).__name__}.")
    lo = torch.as_tensor(stats.min, dtype=like.dtype, device=like.device).T  # (N_F, N_L)
    hi = torch.as_tensor(stats.max, dtype=like.dtype, device=like.device).T
    if tuple(lo.shape) != tuple(like.shape[1:]):
        raise ValidationError(
            f"requests have (N_F, N_L) = {tuple(like.shape[1:])} but the card's feature statistics have {tuple(lo.shape)}; "
            "use the requests of this generator's features and label vocabulary."
        )
    return lo, hi


def clip_requests(requests: torch.Tensor, stats: FeatureStats, *, margin: float = 0.0) -> torch.Tensor:
    """Documented fallback: clamp requests ``(B, N_F, N_L)`` into the card's per-class ``[min - margin, max + margin]``
    (``stats`` = ``card.features.stats``; a DR card's range is the randomised one)."""
    lo, hi = _card_bounds(stats, requests)
    return torch.minimum(torch.maximum(requests, lo - margin), hi + margin).clamp(0, 1)


def check_requests(requests: torch.Tensor, stats: FeatureStats, *, present: torch.Tensor | None = None, margin: float = 0.05) -> None:
    """Raise a ValidationError naming the first request outside the card's trained range (+ ``margin``).

    ``present`` ``(B, N_L)`` restricts the check to regions that exist in each sample.
    """
    lo, hi = _card_bounds(stats, requests)
    bad = (requests < lo - margin) | (requests > hi + margin)
    if present is not None:
        bad &= present[:, None, :].to(torch.bool)
    if bool(bad.any()):
        b, f, lab = (int(v) for v in bad.nonzero()[0])
        raise ValidationError(
            f"requested feature {f} of class {lab} (sample {b}) is {float(requests[b, f, lab]):.3f}, outside the "
            f"generator's trained range [{float(lo[f, lab]):.3f}, {float(hi[f, lab]):.3f}] (+/- {margin}); use a "
            "generator trained on randomised appearance (context_dr_*), or clip_requests(...) as a fallback."
        )
