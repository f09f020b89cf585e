"""Simulated paired multi-contrast brain MR (T1w, T2w, PDw) from the MNI152 2009 tissue maps.

No real paired T1/T2/PD volumes are available offline, so this module *simulates* them. Everything it
returns is simulated spin-echo MR, not patient data, and says so (``simulated=True`` and
:data:`SIMULATED_NOTE` on every record).

Model, per voxel ``x`` and tissue ``t`` in (CSF, GM, WM) with probability ``p_t(x)``::

    S_t(x) = PD_t(x) * (1 - exp(-TR / T1_t(x))) * exp(-TE / T2_t(x))      (spin echo, TR >> TE)
    I(x)   = | B(x) * sum_t p_t(x) S_t(x) + n_re + i n_im |                 (Rician magnitude)

with ``T1_t, T2_t, PD_t`` the literature 1.5 T values of :data:`TISSUE_PARAMETERS` modulated by smooth
random fields (``variability``), ``B`` a smooth multiplicative bias field (``bias``), complex Gaussian noise
of standard deviation ``noise`` times the white-matter signal of each contrast, and optionally a smooth
random elastic deformation (plus a small anisotropic scaling) of the tissue maps so that simulated
"subjects" differ anatomically. The three contrasts of one subject share the anatomy and the receive bias
field (paired data) and have independent noise. Randomness comes only from ``np.random.Generator`` streams
spawned from ``seed``: anatomy, tissue variability, bias and noise have separate streams, so switching one
effect off does not change the others.

Signal equations shared with the abdominal physics prior (:mod:`synthaug.appearance.physics`):
:func:`spin_echo_signal`, :func:`spoiled_gre_signal` (spoiled gradient echo with a flip angle),
:func:`fat_water_signal` (the magnitude of water and fat signals at a given echo time: in phase / opposed
phase), :func:`chemical_shift_te_ms` and the presets :data:`ABDOMINAL_SEQUENCES`. A brain simulation may
use a :class:`GradientEchoPreset` too (no fat in the brain tissue model).

Example::

    >>> from synthaug.data.subjects import load_mni_tissue_maps          # doctest: +SKIP
    >>> sim = simulate_brain_mr(load_mni_tissue_maps(), seed=0, spacing=2.0)  # doctest: +SKIP
    >>> sim.images["T1w"].shape, sim.label.max()                        # doctest: +SKIP
    ((98, 116, 94), 3)
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
from scipy import ndimage

from synthaug._validate import check_positive, check_range, closest
from synthaug.errors import DataError, ShapeError, ValidationError

__all__ = [
    "SIMULATED_NOTE",
    "BRAIN_TISSUE_CLASSES",
    "TissueParameters",
    "TISSUE_PARAMETERS",
    "SequencePreset",
    "GradientEchoPreset",
    "SEQUENCE_PRESETS",
    "ABDOMINAL_SEQUENCES",
    "FAT_WATER_SHIFT_PPM",
    "GYROMAGNETIC_MHZ_PER_T",
    "spin_echo_signal",
    "spoiled_gre_signal",
    "signal_equation",
    "fat_water_signal",
    "fat_phase",
    "chemical_shift_te_ms",
    "abdominal_presets",
    "SimulationParams",
    "SimulatedMR",
    "TissueMapsLike",
    "resample_tissue_maps",
    "simulate_brain_mr",
    "simulate_subjects",
    "write_simulated_mr",
]

SIMULATED_NOTE = "simulated spin-echo MR from the MNI152 2009 tissue maps (not real patient data)"

#: Label ids of the simulated label map (same order as ``vocabulary.brain_tissue_vocabulary()``).
BRAIN_TISSUE_CLASSES: Mapping[int, str] = MappingProxyType(
    {0: "background", 1: "csf", 2: "gray_matter", 3: "white_matter"}
)


@dataclass(frozen=True)
class TissueParameters:
    """Spin-echo relaxation parameters of one tissue at 1.5 T (times in ms, PD relative to water)."""

    name: str
    label: int
    t1_ms: float
    t2_ms: float
    pd: float
    t1_range_ms: tuple[float, float]
    t2_range_ms: tuple[float, float]
    pd_range: tuple[float, float]
    sources: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Citation check: the BrainWeb (Kwan 1999) and textbook values were checked against their sources; the
# figures quoted from Stanisz 2005, Neeb 2006 and Rooney 2007 were written from memory and still need
# checking against the papers before they are quoted in a publication.
_SRC_STANISZ = "Stanisz GJ et al. T1, T2 relaxation and magnetization transfer in tissue at 3T. MRM 2005;54:507-512 (1.5 T: WM T1 884, T2 72 ms; GM T1 1124, T2 95 ms)"
_SRC_TEXTBOOK = "Approximate textbook 1.5 T values as tabulated in Wikipedia 'Relaxation (NMR)': WM T1 780, T2 90 ms; GM T1 920, T2 100 ms; CSF T1 4200-4500, T2 2100-2300 ms"
_SRC_BRAINWEB = "Kwan RK-S, Evans AC, Pike GB. MRI simulation-based evaluation of image-processing and classification methods. IEEE TMI 1999;18(11):1085-1097 (BrainWeb 1.5 T: WM 500/70 ms PD 0.77; GM 833/83 ms PD 0.86; CSF 2569/329 ms PD 1.0)"
_SRC_NEEB = "Neeb H, Zilles K, Shah NJ. Fully-automated detection of cerebral water content changes. NeuroImage 2006;29:910-922 (water content WM ~0.69-0.70, GM ~0.80)"
_SRC_ROONEY = "Rooney WD et al. Magnetic field and tissue dependencies of human brain longitudinal 1H2O relaxation in vivo. MRM 2007;57:308-318 (field dependence of WM/GM T1; CSF T1 ~4 s, field independent)"

#: Representative 1.5 T values, chosen inside the reported literature ranges (white-matter T1 depends
#: strongly on the mapping method through magnetization transfer; the value is taken from the lower part of
#: the range so that spin-echo T1w shows the clinical WM > GM contrast). CSF, GM, WM in label order.
TISSUE_PARAMETERS: tuple[TissueParameters, ...] = (
    TissueParameters(
        "csf",
        1,
        t1_ms=4000.0,
        t2_ms=2000.0,
        pd=1.00,
        t1_range_ms=(2569.0, 4500.0),
        t2_range_ms=(329.0, 2300.0),
        pd_range=(0.97, 1.00),
        sources=(_SRC_TEXTBOOK, _SRC_ROONEY, _SRC_BRAINWEB),
    ),
    TissueParameters(
        "gray_matter",
        2,
        t1_ms=1000.0,
        t2_ms=100.0,
        pd=0.80,
        t1_range_ms=(833.0, 1124.0),
        t2_range_ms=(83.0, 100.0),
        pd_range=(0.78, 0.86),
        sources=(_SRC_STANISZ, _SRC_TEXTBOOK, _SRC_NEEB, _SRC_BRAINWEB),
    ),
    TissueParameters(
        "white_matter",
        3,
        t1_ms=650.0,
        t2_ms=80.0,
        pd=0.69,
        t1_range_ms=(500.0, 884.0),
        t2_range_ms=(70.0, 90.0),
        pd_range=(0.67, 0.77),
        sources=(_SRC_ROONEY, _SRC_STANISZ, _SRC_TEXTBOOK, _SRC_NEEB, _SRC_BRAINWEB),
    ),
)


def _check_timing(what: str, tr_ms: float, te_ms: float) -> None:
    """A sequence's TR and TE: both positive, TE < TR."""
    check_positive(f"{what}.tr_ms", tr_ms)
    check_positive(f"{what}.te_ms", te_ms)
    if te_ms >= tr_ms:
        raise ValidationError(f"{what} needs te_ms < tr_ms, got TE={te_ms} and TR={tr_ms}.")


@dataclass(frozen=True)
class SequencePreset:
    """A spin-echo sequence: repetition time and echo time in ms (typical 1.5 T clinical values)."""

    name: str
    tr_ms: float
    te_ms: float
    description: str = ""

    def __post_init__(self) -> None:
        _check_timing(f"SequencePreset({self.name!r})", self.tr_ms, self.te_ms)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SEQUENCE_PRESETS: Mapping[str, SequencePreset] = MappingProxyType(
    {
        "T1w": SequencePreset("T1w", 500.0, 15.0, "short TR / short TE spin echo: WM > GM > CSF"),
        "T2w": SequencePreset("T2w", 4000.0, 100.0, "long TR / long TE spin echo: CSF > GM > WM"),
        "PDw": SequencePreset(
            "PDw",
            6000.0,
            15.0,
            "long TR / short TE spin echo: CSF > GM > WM (TR 6 s so that CSF, T1 ~4 s, recovers ~78%)",
        ),
    }
)


@dataclass(frozen=True)
class GradientEchoPreset:
    """A spoiled gradient-echo sequence: TR and TE in ms, flip angle in degrees.

    ``te_ms`` is the echo time of the fat/water phase (:func:`fat_phase`); relaxation during the echo uses
    T2 in place of T2* (susceptibility dephasing is not modelled: an approximation that overestimates the
    signal of tissues with short T2*, e.g. iron-loaded liver).
    """

    name: str
    tr_ms: float
    te_ms: float
    flip_deg: float
    description: str = ""

    def __post_init__(self) -> None:
        _check_timing(f"GradientEchoPreset({self.name!r})", self.tr_ms, self.te_ms)
        if not 0.0 < float(self.flip_deg) <= 180.0:
            raise ValidationError(
                f"GradientEchoPreset({self.name!r}).flip_deg must lie in (0, 180] degrees, got {self.flip_deg!r}."
            )

    def to_dict(self) -> dict[str, Any]:
        return {"sequence": "spoiled_gre", **dataclasses.asdict(self)}


#: Chemical shift of the main (methylene) fat peak from water, ppm (single-peak fat model).
FAT_WATER_SHIFT_PPM = 3.4
#: Proton gyromagnetic ratio / 2 pi, MHz per tesla.
GYROMAGNETIC_MHZ_PER_T = 42.577


def chemical_shift_te_ms(field_t: float, *, phase: str, echo: int = 1) -> float:
    """Echo time (ms) at which fat and water are in phase (``phase="in"``) or opposed (``"opposed"``).

    The ``echo``-th such time: in phase at ``echo / df``, opposed at ``(echo - 1/2) / df`` with
    ``df = 3.4 ppm * 42.577 MHz/T * field`` (217 Hz at 1.5 T: in phase 4.6 ms, opposed 2.3 ms; 3 T: 2.3 / 1.15 ms).
    """
    check_positive("field_t", field_t)
    if phase not in ("in", "opposed"):
        raise ValidationError(f"phase must be 'in' or 'opposed', got {phase!r}.")
    if isinstance(echo, bool) or not isinstance(echo, int) or echo < 1:
        raise ValidationError(f"echo must be a positive integer, got {echo!r}.")
    df_hz = FAT_WATER_SHIFT_PPM * GYROMAGNETIC_MHZ_PER_T * field_t
    return 1000.0 * (echo if phase == "in" else echo - 0.5) / df_hz


def fat_phase(te_ms: float, field_t: float) -> float:
    """Phase (radians) of fat relative to water at echo time ``te_ms`` in a gradient echo."""
    return 2.0 * math.pi * FAT_WATER_SHIFT_PPM * GYROMAGNETIC_MHZ_PER_T * field_t * te_ms / 1000.0


def spin_echo_signal(pd: Any, t1: Any, t2: Any, *, tr_ms: float, te_ms: float) -> Any:
    """``PD (1 - exp(-TR/T1)) exp(-TE/T2)`` (spin echo, TR >> TE); numpy arrays or floats."""
    return pd * (1.0 - np.exp(-tr_ms / t1)) * np.exp(-te_ms / t2)


def spoiled_gre_signal(pd: Any, t1: Any, t2: Any, *, tr_ms: float, te_ms: float, flip_deg: float) -> Any:
    """Steady-state spoiled gradient echo: ``PD sin(a) (1 - E1) / (1 - cos(a) E1) exp(-TE/T2)``, ``E1 = exp(-TR/T1)``."""
    a = math.radians(flip_deg)
    e1 = np.exp(-tr_ms / t1)
    return pd * math.sin(a) * (1.0 - e1) / (1.0 - math.cos(a) * e1) * np.exp(-te_ms / t2)


def signal_equation(pd: Any, t1: Any, t2: Any, preset: SequencePreset | GradientEchoPreset) -> Any:
    """The signal of ``preset``'s sequence kind (spin echo or spoiled gradient echo), without fat phase."""
    if isinstance(preset, GradientEchoPreset):
        return spoiled_gre_signal(pd, t1, t2, tr_ms=preset.tr_ms, te_ms=preset.te_ms, flip_deg=preset.flip_deg)
    if isinstance(preset, SequencePreset):
        return spin_echo_signal(pd, t1, t2, tr_ms=preset.tr_ms, te_ms=preset.te_ms)
    raise ValidationError(f"preset must be a SequencePreset or GradientEchoPreset, got {type(preset).__name__}.")


def fat_water_signal(water: Any, fat: Any, preset: SequencePreset | GradientEchoPreset, *, field_t: float) -> Any:
    """Magnitude ``|W + F exp(i phi)|``: ``phi`` = fat phase at TE for a gradient echo, 0 for a spin echo
    (the refocusing pulse rephases the chemical shift). In phase: ``W + F``; opposed phase: ``|W - F|``."""
    phi = fat_phase(preset.te_ms, field_t) if isinstance(preset, GradientEchoPreset) else 0.0
    return np.sqrt(np.maximum(water * water + fat * fat + 2.0 * water * fat * math.cos(phi), 0.0))


def abdominal_presets(field_t: float) -> Mapping[str, SequencePreset | GradientEchoPreset]:
    """Typical clinical abdominal sequences at ``field_t`` (1.5 or 3 T); in/opposed-phase TEs from the field.

    T1w: spin echo TR 500 / TE 10 ms; T2w: (fast) spin echo TR 4000 / TE 90 ms; in_phase / opposed_phase:
    2D spoiled gradient echo TR 150 ms, flip 70 deg, first in-phase / opposed-phase echo.
    """
    check_positive("field_t", field_t)
    te_in = chemical_shift_te_ms(field_t, phase="in")
    te_op = chemical_shift_te_ms(field_t, phase="opposed")
    return MappingProxyType(
        {
            "T1w": SequencePreset("T1w", 500.0, 10.0, "short TR / short TE spin echo: fat > liver > spleen, muscle"),
            "T2w": SequencePreset("T2w", 4000.0, 90.0, "long TR / long TE (fast) spin echo: fluid > spleen > liver > muscle"),
            "in_phase": GradientEchoPreset(
                "in_phase", 150.0, round(te_in, 3), 70.0, f"spoiled GRE, fat and water in phase (TE {te_in:.2f} ms at {field_t} T)"
            ),
            "opposed_phase": GradientEchoPreset(
                "opposed_phase", 150.0, round(te_op, 3), 70.0,
                f"spoiled GRE, fat and water opposed (TE {te_op:.2f} ms at {field_t} T): |W - F|",
            ),
        }
    )


#: The abdominal presets at 1.5 T and 3 T, by field.
ABDOMINAL_SEQUENCES: Mapping[float, Mapping[str, SequencePreset | GradientEchoPreset]] = MappingProxyType(
    {1.5: abdominal_presets(1.5), 3.0: abdominal_presets(3.0)}
)


class TissueMapsLike(Protocol):
    """What the simulator reads from ``synthaug.data.subjects.TissueMaps`` (or a test phantom)."""

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain_mask: np.ndarray
    affine: np.ndarray


@dataclass(frozen=True)
class SimulationParams:
    """Everything needed to replay one simulated subject: ``simulate_brain_mr(maps, **params.kwargs())``."""

    seed: int
    presets: tuple[SequencePreset | GradientEchoPreset, ...]
    tissues: tuple[TissueParameters, ...]
    noise: float
    bias: float
    variability: float
    deform: bool
    deform_mm: float
    deform_scale: float
    spacing: float | None
    simulated: bool = True
    note: str = SIMULATED_NOTE

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`simulate_brain_mr` that reproduce this simulation."""
        return {
            "seed": self.seed,
            "contrasts": self.presets,
            "noise": self.noise,
            "bias": self.bias,
            "variability": self.variability,
            "deform": self.deform,
            "deform_mm": self.deform_mm,
            "deform_scale": self.deform_scale,
            "spacing": self.spacing,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "presets": [p.to_dict() for p in self.presets],
            "tissues": [t.to_dict() for t in self.tissues],
            "noise": self.noise,
            "bias": self.bias,
            "variability": self.variability,
            "deform": self.deform,
            "deform_mm": self.deform_mm,
            "deform_scale": self.deform_scale,
            "spacing": self.spacing,
            "simulated": self.simulated,
            "note": self.note,
        }


@dataclass(frozen=True, eq=False)
class SimulatedMR:
    """One simulated subject: paired contrasts on one grid, the tissue label map and the bias field."""

    name: str
    images: Mapping[str, np.ndarray]
    label: np.ndarray
    affine: np.ndarray
    bias_field: np.ndarray
    params: SimulationParams
    class_names: Mapping[int, str] = field(default_factory=lambda: BRAIN_TISSUE_CLASSES)
    simulated: bool = True
    label_source: str = SIMULATED_NOTE

    @property
    def spacing(self) -> tuple[float, float, float]:
        s = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(s[0]), float(s[1]), float(s[2]))

    def to_dict(self) -> dict[str, Any]:
        """Metadata (no arrays), JSON-serialisable."""
        return {
            "name": self.name,
            "shape": list(self.label.shape),
            "spacing": list(self.spacing),
            "contrasts": list(self.images),
            "class_names": {str(k): v for k, v in self.class_names.items()},
            "simulated": self.simulated,
            "label_source": self.label_source,
            "params": self.params.to_dict(),
        }


# ----------------------------------------------------------------------------------------- validation


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValidationError(f"seed must be a non-negative int, got {seed!r}. Pass e.g. seed=0.")
    return int(seed)


def _resolve_contrasts(
    contrasts: Sequence[str | SequencePreset | GradientEchoPreset],
) -> tuple[SequencePreset | GradientEchoPreset, ...]:
    if isinstance(contrasts, (str, SequencePreset, GradientEchoPreset)):
        contrasts = (contrasts,)
    if len(contrasts) == 0:
        raise ValidationError(f"contrasts must name at least one of {sorted(SEQUENCE_PRESETS)}, got ().")
    presets = []
    for c in contrasts:
        if isinstance(c, (SequencePreset, GradientEchoPreset)):
            presets.append(c)
        elif isinstance(c, str):
            if c not in SEQUENCE_PRESETS:
                folded = {k.lower(): k for k in SEQUENCE_PRESETS}
                hint = (
                    f" Did you mean {folded[c.lower()]!r}?"
                    if c.lower() in folded
                    else closest(c, SEQUENCE_PRESETS)
                )
                raise ValidationError(
                    f"contrasts: {c!r} is not a sequence preset; known: {list(SEQUENCE_PRESETS)}.{hint} "
                    "Or pass a SequencePreset(name, tr_ms, te_ms) for a custom sequence."
                )
            presets.append(SEQUENCE_PRESETS[c])
        else:
            raise ValidationError(f"contrasts must hold names or SequencePreset records, got {c!r}.")
    names = [p.name for p in presets]
    if len(set(names)) != len(names):
        raise ValidationError(f"contrasts must not repeat a name, got {names}.")
    return tuple(presets)


def _check_maps(maps: TissueMapsLike) -> None:
    for attr in ("gm", "wm", "csf", "brain_mask", "affine"):
        if not hasattr(maps, attr):
            raise ValidationError(
                f"tissue_maps must have a {attr!r} attribute (see synthaug.data.subjects.TissueMaps), "
                f"got {type(maps).__name__}."
            )
    shape = np.shape(maps.gm)
    if len(shape) != 3:
        raise ShapeError(f"tissue_maps.gm must be a 3D (X, Y, Z) array, got shape {shape}.")
    for attr in ("wm", "csf", "brain_mask"):
        if np.shape(getattr(maps, attr)) != shape:
            raise ShapeError(
                f"tissue_maps.{attr} has shape {np.shape(getattr(maps, attr))} but tissue_maps.gm has {shape}; "
                "all tissue maps must share one grid."
            )
    if np.shape(maps.affine) != (4, 4):
        raise ShapeError(f"tissue_maps.affine must be 4x4, got shape {np.shape(maps.affine)}.")


# ------------------------------------------------------------------------------------ smooth fields


def _smooth_fields(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    n: int,
    *,
    n_freq: int = 4,
    window: tuple[slice, ...] | None = None,
) -> np.ndarray:
    """``n`` smooth zero-mean random fields of unit standard deviation (random low-order cosine series).

    Separable cosine basis of ``n_freq`` frequencies per axis over ``shape`` (constant term excluded) with
    amplitudes decaying as ``1/(1+|k|^2)``, evaluated with one tensor contraction (cost linear in the voxel
    count). With ``window`` only that box of the grid is evaluated (and normalised).
    """
    k = np.arange(n_freq)
    decay = 1.0 / (1.0 + k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2)
    coeffs = (rng.standard_normal((n, n_freq, n_freq, n_freq)) * decay).astype(np.float32)
    coeffs[:, 0, 0, 0] = 0.0
    window = window or tuple(slice(0, s) for s in shape)
    bases = [
        np.cos(np.pi * k[:, None] * (np.arange(s)[w][None, :] + 0.5) / s).astype(np.float32)
        for s, w in zip(shape, window, strict=True)
    ]
    fields = np.einsum("nabc,ax,by,cz->nxyz", coeffs, *bases, optimize=True)
    norm = fields.reshape(n, -1).std(axis=1) + 1e-12
    return (fields / norm[:, None, None, None].astype(np.float32)).astype(np.float32, copy=False)


# ------------------------------------------------------------------------------------ resampling


def _voxel_sizes(affine: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)


def _downsample(arr: np.ndarray, factors: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float32)
    if np.allclose(factors, np.round(factors)):  # exact area average over whole blocks
        f = np.round(factors).astype(int)
        cropped = arr[: out_shape[0] * f[0], : out_shape[1] * f[1], : out_shape[2] * f[2]]
        return cropped.reshape(out_shape[0], f[0], out_shape[1], f[1], out_shape[2], f[2]).mean(
            axis=(1, 3, 5)
        )
    sigma = np.sqrt(np.maximum(factors**2 - 1.0, 0.0)) / 2.0  # anti-aliasing before linear interpolation
    smooth = ndimage.gaussian_filter(arr, sigma) if np.any(sigma > 0) else arr
    coords = [(np.arange(n) + 0.5) * f - 0.5 for n, f in zip(out_shape, factors, strict=True)]
    grid = np.meshgrid(*coords, indexing="ij")
    return ndimage.map_coordinates(smooth, grid, order=1, mode="nearest").astype(np.float32)


def _spacing_factors(affine: np.ndarray, spacing: float) -> np.ndarray:
    """Downsampling factor per axis for isotropic ``spacing`` mm (each >= 1, else ValidationError)."""
    check_positive("spacing", spacing)
    vox = _voxel_sizes(affine)
    factors = spacing / vox
    if np.any(factors < 1.0 - 1e-6):
        raise ValidationError(
            f"spacing={spacing} mm is finer than the tissue maps' voxel size {vox.round(3).tolist()} mm; only "
            "downsampling is supported. Use spacing >= the current voxel size or spacing=None."
        )
    return np.maximum(factors, 1.0)


def _resample_arrays(
    arrays: dict[str, np.ndarray], affine: np.ndarray, spacing: float
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Area-average same-shape arrays to isotropic ``spacing`` mm; returns them and the new affine."""
    factors = _spacing_factors(affine, spacing)
    shape = next(iter(arrays.values())).shape
    out_shape = tuple(max(1, int(math.floor(n / f + 1e-6))) for n, f in zip(shape, factors, strict=True))
    step = np.diag(np.append(factors, 1.0))
    step[:3, 3] = (factors - 1.0) / 2.0  # new voxel j covers old voxels around f*j + (f-1)/2
    return {k: _downsample(v, factors, out_shape) for k, v in arrays.items()}, affine @ step


def resample_tissue_maps(
    tissue_maps: TissueMapsLike,
    *,
    spacing: float | None = 2.0,
    crop_to_brain: bool = False,
    margin_mm: float = 4.0,
) -> TissueMapsLike:
    """Area-average the tissue maps to isotropic ``spacing`` mm and optionally crop to the brain.

    Returns the same dataclass type with every array field and the affine replaced (1 mm MNI at
    ``spacing=2.0`` gives 98x116x94). Only coarsening is supported (``spacing`` >= the current voxel size).
    For simulation prefer ``simulate_brain_mr(native_maps, spacing=...)``, which deforms the anatomy on
    the native grid before downsampling (thin CSF survives the deformation better).
    """
    _check_maps(tissue_maps)
    if not dataclasses.is_dataclass(tissue_maps):
        raise ValidationError(
            f"tissue_maps must be a dataclass such as synthaug.data.subjects.TissueMaps, got {type(tissue_maps).__name__}."
        )
    affine = np.asarray(tissue_maps.affine, dtype=np.float64)
    shape = tuple(np.shape(tissue_maps.gm))
    arrays = {
        f.name: getattr(tissue_maps, f.name)
        for f in dataclasses.fields(tissue_maps)
        if isinstance(getattr(tissue_maps, f.name), np.ndarray)
        and getattr(tissue_maps, f.name).shape == shape
    }
    if crop_to_brain:
        check_positive("margin_mm", margin_mm, allow_zero=True)
        box = _bounding_box(np.asarray(tissue_maps.brain_mask) > 0.5)
        if box is None:
            raise ValidationError(
                "crop_to_brain=True needs a non-empty tissue_maps.brain_mask (> 0.5 somewhere)."
            )
        margin = np.ceil(margin_mm / _voxel_sizes(affine)).astype(int)
        lo = np.maximum(box[0] - margin, 0)
        hi = np.minimum(box[1] + margin, shape)
        window = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        arrays = {k: v[window] for k, v in arrays.items()}
        affine = affine.copy()
        affine[:3, 3] = affine[:3, :3] @ lo + affine[:3, 3]
    if spacing is not None:
        arrays, affine = _resample_arrays(arrays, affine, spacing)
    return dataclasses.replace(tissue_maps, affine=affine, **arrays)


def _bounding_box(support: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(lo, hi)`` (hi exclusive) of the True voxels, or None; via per-axis ``any`` (no argwhere)."""
    lo, hi = [], []
    for ax in range(support.ndim):
        hit = np.flatnonzero(support.any(axis=tuple(a for a in range(support.ndim) if a != ax)))
        if hit.size == 0:
            return None
        lo.append(hit[0])
        hi.append(hit[-1] + 1)
    return np.array(lo), np.array(hi)


# ------------------------------------------------------------------------------------ simulation


def _deform(
    rng: np.random.Generator,
    probs: np.ndarray,
    mask: np.ndarray,
    vox: np.ndarray,
    deform_mm: float,
    deform_scale: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Pull the tissue maps through a smooth random displacement plus a small anisotropic scaling.

    Only output voxels that can receive tissue (the support's bounding box grown by the largest
    possible shift) are interpolated; the rest stays 0.
    """
    shape = mask.shape
    box = _bounding_box((probs.sum(axis=0) > 0) | (mask > 0))
    if box is None:
        return probs, mask
    scales = 1.0 + rng.uniform(-deform_scale, deform_scale, size=3)
    centre = (box[0] + box[1] - 1) / 2.0
    reach = deform_scale * (box[1] - box[0]) / 2.0 + (1.0 + deform_scale) * deform_mm / vox + 1.0
    lo = np.maximum(box[0] - np.ceil(reach).astype(int), 0)
    hi = np.minimum(box[1] + np.ceil(reach).astype(int), shape)
    window = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    disp = _smooth_fields(rng, shape, 3, window=window)
    disp /= np.abs(disp).reshape(3, -1).max(axis=1)[:, None, None, None] + 1e-12
    disp *= (deform_mm / vox).astype(np.float32)[:, None, None, None]
    for ax in range(3):
        idx = np.arange(lo[ax], hi[ax], dtype=np.float32)
        src = centre[ax] + (idx - centre[ax]) / scales[ax]
        disp[ax] += src.reshape([-1 if a == ax else 1 for a in range(3)]).astype(np.float32)
    out = np.zeros((4, *shape), dtype=np.float32)
    for i, arr in enumerate((*probs, mask)):
        out[(i, *window)] = ndimage.map_coordinates(arr, disp, order=1, mode="constant", cval=0.0)
    return out[:3], out[3]


def _signal(pd: np.ndarray, t1: np.ndarray, t2: np.ndarray, preset: SequencePreset | GradientEchoPreset) -> np.ndarray:
    return signal_equation(pd, t1, t2, preset)


def _reference_wm(preset: SequencePreset | GradientEchoPreset) -> float:
    wm = TISSUE_PARAMETERS[2]
    return float(_signal(np.float64(wm.pd), np.float64(wm.t1_ms), np.float64(wm.t2_ms), preset))


def simulate_brain_mr(
    tissue_maps: TissueMapsLike,
    *,
    seed: int,
    contrasts: Sequence[str | SequencePreset | GradientEchoPreset] = ("T1w", "T2w", "PDw"),
    deform: bool = True,
    deform_mm: float = 4.0,
    deform_scale: float = 0.04,
    noise: float = 0.03,
    bias: float = 0.1,
    variability: float = 0.03,
    spacing: float | None = None,
    name: str | None = None,
) -> SimulatedMR:
    """Simulate one subject of paired spin-echo brain MR (see the module docstring for the model).

    Args:
        tissue_maps: CSF/GM/WM probabilities, brain mask and affine (``load_mni_tissue_maps()``).
        seed: seeds every random draw (``np.random.SeedSequence``); same seed, same arrays.
        contrasts: names from :data:`SEQUENCE_PRESETS` or custom :class:`SequencePreset` records.
        deform: apply a smooth random elastic deformation (max ``deform_mm`` mm) and an anisotropic
            scaling of up to ``deform_scale`` (relative) to the tissue maps.
        noise: standard deviation of the complex Gaussian noise relative to the WM signal of each contrast.
        bias: standard deviation of the log of the smooth multiplicative bias field (0 = none).
        variability: relative standard deviation of the smooth random T1/T2/PD fields per tissue.
        spacing: simulate on this isotropic grid (mm): the maps are deformed on their own grid, then
            area-averaged to ``spacing`` (e.g. 2.0 for 1 mm MNI -> 98x116x94); ``None`` keeps their grid.
        name: subject name; default ``f"simmr_seed{seed}"``.
    """
    seed = _check_seed(seed)
    presets = _resolve_contrasts(contrasts)
    check_positive("noise", noise, allow_zero=True)
    check_positive("bias", bias, allow_zero=True)
    check_range("variability", variability, 0.0, 0.3)
    check_positive("deform_mm", deform_mm, allow_zero=True)
    check_range("deform_scale", deform_scale, 0.0, 0.3)
    _check_maps(tissue_maps)
    if spacing is not None:
        _spacing_factors(np.asarray(tissue_maps.affine), spacing)  # fail before the expensive part

    anatomy_rng, tissue_rng, bias_rng, noise_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    affine = np.asarray(tissue_maps.affine, dtype=np.float64)
    probs = np.stack([np.asarray(tissue_maps.csf), np.asarray(tissue_maps.gm), np.asarray(tissue_maps.wm)])
    probs = np.clip(probs.astype(np.float32, copy=False), 0.0, 1.0)
    mask = np.asarray(tissue_maps.brain_mask, dtype=np.float32)
    if deform and (deform_mm > 0 or deform_scale > 0):
        probs, mask = _deform(anatomy_rng, probs, mask, _voxel_sizes(affine), deform_mm, deform_scale)
    if spacing is not None:
        small, affine = _resample_arrays(
            {"csf": probs[0], "gm": probs[1], "wm": probs[2], "mask": mask}, affine, spacing
        )
        probs, mask = np.stack([small["csf"], small["gm"], small["wm"]]), small["mask"]
    shape = mask.shape

    label = np.zeros(shape, dtype=np.int16)
    psum = probs.sum(axis=0)
    inside = (mask >= 0.5) & (psum > 0.05)
    label[inside] = (np.argmax(probs[:, inside], axis=0) + 1).astype(np.int16)
    # Inside the brain mask the tissue fractions sum to one: voxels cut by the mask edge (after
    # downsampling or deformation) are brain tissue, not half empty. Outside, the maps fade as given.
    probs[:, inside] /= psum[inside]

    clean = {p.name: np.zeros(shape, dtype=np.float32) for p in presets}
    for i, tissue in enumerate(TISSUE_PARAMETERS):  # one tissue at a time keeps memory at ~3 fields
        if variability > 0:
            mod = 1.0 + variability * _smooth_fields(tissue_rng, shape, 3)
            np.clip(mod, 0.5, 1.5, out=mod)
        else:
            mod = np.ones((3, *shape), dtype=np.float32)
        t1, t2, pd = tissue.t1_ms * mod[0], tissue.t2_ms * mod[1], tissue.pd * mod[2]
        for p in presets:
            clean[p.name] += probs[i] * _signal(pd, t1, t2, p)

    if bias > 0:
        bias_field = np.exp(bias * _smooth_fields(bias_rng, shape, 1)[0]).astype(np.float32)
    else:
        bias_field = np.ones(shape, dtype=np.float32)

    images: dict[str, np.ndarray] = {}
    for p in presets:
        img = clean[p.name] * bias_field
        if noise > 0:
            sigma = np.float32(noise * _reference_wm(p))
            re = img + sigma * noise_rng.standard_normal(shape, dtype=np.float32)
            im = sigma * noise_rng.standard_normal(shape, dtype=np.float32)
            img = np.sqrt(re * re + im * im)
        images[p.name] = img.astype(np.float32, copy=False)

    params = SimulationParams(
        seed=seed,
        presets=presets,
        tissues=TISSUE_PARAMETERS,
        noise=float(noise),
        bias=float(bias),
        variability=float(variability),
        deform=bool(deform),
        deform_mm=float(deform_mm),
        deform_scale=float(deform_scale),
        spacing=None if spacing is None else float(spacing),
    )
    return SimulatedMR(
        name=name or f"simmr_seed{seed}",
        images=MappingProxyType(images),
        label=label,
        affine=affine,
        bias_field=bias_field,
        params=params,
    )


def simulate_subjects(
    tissue_maps: TissueMapsLike, *, n: int, seed: int, spacing: float | None = None, **options: Any
) -> list[SimulatedMR]:
    """``n`` simulated subjects (deformed by default) with per-subject seeds drawn from ``seed``.

    Each subject's ``params.seed`` replays it alone: ``simulate_brain_mr(maps, **sim.params.kwargs())``.
    ``options`` are the keyword options of :func:`simulate_brain_mr`.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValidationError(f"n must be a positive int (number of simulated subjects), got {n!r}.")
    seed = _check_seed(seed)
    for key in ("seed", "name", "spacing"):
        if key in options:
            raise ValidationError(f"simulate_subjects sets {key!r} itself; remove it from the options.")
    seeds = np.random.SeedSequence(seed).generate_state(int(n))
    return [
        simulate_brain_mr(tissue_maps, seed=int(s), spacing=spacing, name=f"simmr_{seed}_{i:03d}", **options)
        for i, s in enumerate(seeds)
    ]


# ------------------------------------------------------------------------------------ writing


def write_simulated_mr(subjects: Sequence[SimulatedMR], out_dir: str | os.PathLike[str]) -> Path:
    """Write ``out_dir/<name>/{<contrast>,label}.nii.gz`` and ``out_dir/simulation.json`` atomically.

    The folder is built next to ``out_dir`` and renamed into place; an existing ``out_dir`` is never
    overwritten (:class:`DataError`).
    """
    import json

    from synthaug.data.nnunet_export import write_nifti

    out = Path(out_dir)
    if out.exists():
        raise DataError(f"Output folder {out} already exists; choose another --out or remove it first.")
    if not subjects:
        raise ValidationError("subjects must hold at least one SimulatedMR.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for sim in subjects:
            folder = tmp / sim.name
            folder.mkdir()
            for contrast, img in sim.images.items():
                write_nifti(folder / f"{contrast}.nii.gz", img, sim.affine)
            write_nifti(folder / "label.nii.gz", sim.label, sim.affine)
        meta = {"note": SIMULATED_NOTE, "simulated": True, "subjects": [s.to_dict() for s in subjects]}
        (tmp / "simulation.json").write_text(json.dumps(meta, indent=2))
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
