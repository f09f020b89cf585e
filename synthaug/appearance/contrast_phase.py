"""Contrast-phase prior: per-region CT attenuation of the abdominal super-classes in each contrast phase.

Within CT, what changes between a non-contrast scan and a contrast-enhanced one is a per-region mean: the
contrast-filled aorta reaches 290-360 HU in the late arterial phase where unenhanced blood is 30-50 HU, the
liver gains 20-30 HU in the arterial phase and more in the portal venous phase, the kidneys light up. An
appearance-randomised ConText-GAN (``context_dr_ct_a``) renders any per-region mean with real texture, so a CT
augmentation for unseen contrast phases draws a phase, then per region a mean attenuation in that phase's range
(:data:`PHASE_HU`), and asks the generator for it. Classes whose appearance does not follow the phase keep their
own (``None`` in the table): bone, the gastrointestinal tract (its lumen holds air, fluid or oral contrast
whatever the phase) and the background.

Values (HU, uniform ranges; approximate, for augmentation, not for diagnosis). Checked against a source: late
arterial aorta 290-360 HU and liver +20-30 HU over its unenhanced value (Radiopaedia, "Late arterial phase",
rev. 2023, its references 4-6, 8); unenhanced liver 50-70 HU, about 10 HU above the spleen (standard
radiology texts). The other ranges are typical values written for this table without a checked source:
treat them as assumptions (they are wide on purpose).

Randomness: one integer seed per volume (:func:`sample_contrast_phase`), which fixes the phase and every
region's draw, so a call replays from its record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import torch

from synthaug.appearance.remap import AppearanceParams, AppearanceRanges, remap_appearance
from synthaug.data.vocabulary import SUPERCLASSES
from synthaug.errors import ValidationError
from synthaug.features import region_features
from synthaug.intensity import IntensityConvention

__all__ = ["PHASES", "PHASE_HU", "PHASE_SOURCES", "PHASE_RANGES", "ContrastPhaseDraw", "sample_contrast_phase",
           "phase_region_hu", "contrast_phase_image"]

#: The phases a draw chooses from (uniformly).
PHASES: tuple[str, ...] = ("non_contrast", "arterial", "portal_venous", "delayed")

_R = tuple[float, float]


def _table(rows: Mapping[str, Mapping[str, _R | None]]) -> Mapping[str, Mapping[str, _R | None]]:
    for phase, by_class in rows.items():
        if phase not in PHASES or set(by_class) != set(SUPERCLASSES):
            raise ValueError(f"phase table row {phase!r} must cover {SUPERCLASSES}")  # a programming error
    return MappingProxyType({p: MappingProxyType(dict(rows[p])) for p in PHASES})


_KEEP = {"gastrointestinal": None, "bone": None}
#: phase -> super-class -> (low, high) HU of the region mean, or None (the region keeps its own mean).
PHASE_HU: Mapping[str, Mapping[str, _R | None]] = _table({
    "non_contrast": {"liver": (50, 70), "spleen": (40, 60), "kidneys": (25, 45), "cardiovascular": (30, 50),
                     "muscle": (40, 60), "other_organs": (30, 50), **_KEEP},
    "arterial": {"liver": (70, 100), "spleen": (90, 150), "kidneys": (140, 220), "cardiovascular": (200, 360),
                 "muscle": (45, 70), "other_organs": (60, 120), **_KEEP},
    "portal_venous": {"liver": (100, 130), "spleen": (100, 130), "kidneys": (150, 200),
                      "cardiovascular": (140, 220), "muscle": (50, 70), "other_organs": (70, 110), **_KEEP},
    "delayed": {"liver": (80, 110), "spleen": (80, 110), "kidneys": (100, 180), "cardiovascular": (100, 150),
                "muscle": (50, 70), "other_organs": (60, 100), **_KEEP},
})
PHASE_SOURCES: tuple[str, ...] = (
    "Radiopaedia, 'Late arterial phase' (A. Murphy, rev. 2023-03-23): peak aortic attenuation 290-360 HU, liver "
    "+20-30 HU over the unenhanced baseline, portal vein 145 +/- 20 HU",
    "unenhanced liver 50-70 HU, about 10 HU above the spleen (standard radiology texts)",
    "other ranges: typical values, not checked against a source (assumptions)",
)
#: Texture kept, only the level moves: monotone curves, mild contrast change, little added noise; the background
#: (air, fat, unlabelled tissue) is left as it is.
PHASE_RANGES = AppearanceRanges(kind_probs=(1.0, 0.0, 0.0), contrast_range=(0.7, 1.4), noise_range=(0.0, 0.02),
                                remap_background=False)


@dataclass(frozen=True)
class ContrastPhaseDraw:
    """The phase of one volume and the seed of its per-region draws (replayable)."""

    phase: str
    seed: int

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValidationError(f"contrast phase {self.phase!r} is not one of {PHASES}.")


def sample_contrast_phase(seed: int, phases: Sequence[str] = PHASES) -> ContrastPhaseDraw:
    """The draw of one volume from an integer seed: a phase uniformly among ``phases``, and a region seed."""
    phases = tuple(phases)
    if not phases or any(p not in PHASES for p in phases):
        raise ValidationError(f"phases must be a non-empty subset of {PHASES}, got {phases!r}.")
    g = torch.Generator().manual_seed(int(seed))
    i = int(torch.randint(len(phases), (), generator=g))
    return ContrastPhaseDraw(phases[i], int(torch.randint(0, 2**62, (), generator=g)))


def phase_region_hu(draw: ContrastPhaseDraw, labels: Sequence[str]) -> torch.Tensor:
    """Region mean attenuation (HU) per label of ``labels`` (NaN: the region keeps its own), ``(N_L,)``."""
    unknown = [n for n in labels[1:] if n not in SUPERCLASSES]
    if unknown:
        raise ValidationError(f"the contrast-phase prior knows the super-classes {list(SUPERCLASSES)}; got {unknown}.")
    g = torch.Generator().manual_seed(draw.seed)
    u = torch.rand(len(labels), generator=g, dtype=torch.float64)
    out = torch.full((len(labels),), float("nan"), dtype=torch.float64)
    for i, name in enumerate(labels):
        r = PHASE_HU[draw.phase].get(name) if i > 0 else None
        if r is not None:
            out[i] = r[0] + float(u[i]) * (r[1] - r[0])
    return out


def contrast_phase_image(x: torch.Tensor, classes: torch.Tensor, draws: Sequence[ContrastPhaseDraw], *,
                         labels: Sequence[str], convention: IntensityConvention) -> torch.Tensor:
    """``x`` ((B, 1, *spatial), the generator's [-1, 1] scale of a CT window) with each region moved to its
    phase's attenuation (texture kept: :data:`PHASE_RANGES`); regions the table keeps keep their own mean."""
    if convention.kind != "ct_window":
        raise ValidationError("the contrast-phase prior needs a CT-window generator (Hounsfield units).")
    if len(draws) != x.shape[0]:
        raise ValidationError(f"{len(draws)} draw(s) for a batch of {x.shape[0]}.")
    n = len(labels)
    hu = torch.stack([phase_region_hu(d, labels) for d in draws]).to(x.device, x.dtype)  # (B, N_L)
    target = convention.normalise(torch.nan_to_num(hu, nan=0.0))
    own = region_features(x, classes, n_labels=n, names=("mean",), value_range=(-1.0, 1.0)).values[:, 0]
    means = torch.where(torch.isnan(hu), own.to(x.dtype), target)
    params = AppearanceParams(tuple(d.seed for d in draws), (True,) * len(draws), PHASE_RANGES)
    return remap_appearance(x, classes, params, n_labels=n, means=means)
