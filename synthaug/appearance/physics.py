"""Physics prior: render a super-class label map as *simulated* abdominal MR (T1w, T2w, in/opposed phase).

Everything this module returns is simulated MR, not patient data (``simulated=True`` on every record and
:data:`SIMULATED_NOTE`). Model, for each voxel ``x`` of super-class ``c`` with tissues ``t`` of
:data:`synthaug.data.abdominal_tissues.SUPERCLASS_MIXTURES` (background: :data:`BODY_MIXTURE` inside the
body, air outside)::

    w_t(x)  = softmax_t(log mean_weight_t + heterogeneity * z_t(x))          (smooth random tissue patches)
    W(x)    = sum_t w_t(x) PD_ct (1 - ff_t) S(T1_ct, T2_ct)                   (water)
    F(x)    = sum_t w_t(x) PD_ct ff_t       S(T1_fat, T2_fat)                 (fat)
    I(x)    = | B(x) |G*W + (G*F) e^{i phi}| + n_re + i n_im |               (Rician magnitude)

with ``S`` the sequence's signal equation (spin echo or spoiled gradient echo,
:func:`synthaug.data.mr_simulator.signal_equation`), ``T1_ct, T2_ct, PD_ct`` the literature values of tissue
``t`` at the chosen field times a per-region random factor ``1 + variability * N(0, 1)`` (each region of
each simulated subject gets its own tissue parameters), ``G`` a small Gaussian partial-volume blur (which
makes the opposed-phase "India ink" line at fat/water borders), ``phi`` the fat phase at TE (0 for spin
echo), ``B`` a smooth multiplicative bias field and complex Gaussian noise of standard deviation ``noise``
times the median foreground signal. Flowing blood (``blood="flowing"``) is a flow void on spin echo
(signal x 0.1) and fully relaxed inflow on gradient echo (``S = PD sin(a) exp(-TE/T2)``).

Randomness: separate ``np.random.Generator`` streams spawned from ``seed`` for tissue patches, per-region
parameters, bias and noise (switching one effect off leaves the others unchanged).

>>> import numpy as np
>>> label = np.zeros((32, 32), np.int16); label[8:24, 6:16] = 1; label[8:24, 18:26] = 2   # liver, spleen
>>> sim = simulate_abdominal_mr(label, seed=0, contrasts=("T1w",), noise=0.0, bias=0.0)
>>> bool(sim.images["T1w"][label == 1].mean() > sim.images["T1w"][label == 2].mean())     # liver > spleen on T1w
True
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from scipy import ndimage

from synthaug._validate import check_choice, check_positive, check_range, closest
from synthaug.data.abdominal_tissues import (
    ABDOMINAL_TISSUES,
    BODY_MIXTURE,
    FIELDS_T,
    SUPERCLASS_MIXTURES,
    TissueMixture,
)
from synthaug.data.mr_simulator import (
    GradientEchoPreset,
    SequencePreset,
    _smooth_fields,
    abdominal_presets,
    fat_water_signal,
    signal_equation,
)
from synthaug.data.vocabulary import SUPERCLASSES
from synthaug.errors import LabelError, ShapeError, ValidationError

__all__ = [
    "SIMULATED_NOTE",
    "SUPERCLASS_NAMES",
    "BLOOD_MODES",
    "PhysicsParams",
    "SimulatedAbdominalMR",
    "simulate_abdominal_mr",
    "tissue_signal",
    "class_signals",
]

SIMULATED_NOTE = (
    "simulated MR (literature T1/T2/PD, spin-echo / spoiled gradient-echo signal equations) of a label map; "
    "not real patient data"
)
#: Label ids of the super-class vocabulary (0 = background), the order :func:`simulate_abdominal_mr` reads.
SUPERCLASS_NAMES: tuple[str, ...] = ("background", *SUPERCLASSES)
BLOOD_MODES = ("static", "flowing")
_FLOW_VOID = 0.1


@dataclass(frozen=True)
class PhysicsParams:
    """Everything needed to replay one simulation: ``simulate_abdominal_mr(label, **params.kwargs())``."""

    seed: int
    contrasts: tuple[SequencePreset | GradientEchoPreset, ...]
    field_t: float
    variability: float
    heterogeneity: float
    blur: float
    bias: float
    noise: float
    blood: str
    body_margin: int
    simulated: bool = True
    note: str = SIMULATED_NOTE

    def kwargs(self) -> dict[str, Any]:
        return {
            "seed": self.seed, "contrasts": self.contrasts, "field_t": self.field_t, "variability": self.variability,
            "heterogeneity": self.heterogeneity, "blur": self.blur, "bias": self.bias, "noise": self.noise,
            "blood": self.blood, "body_margin": self.body_margin,
        }

    def to_dict(self) -> dict[str, Any]:
        d = self.kwargs()
        d["contrasts"] = [c.to_dict() for c in self.contrasts]
        return {**d, "simulated": self.simulated, "note": self.note}


@dataclass(frozen=True, eq=False)
class SimulatedAbdominalMR:
    """Simulated contrasts of one label map (same grid), the body mask, the bias field and the record."""

    images: Mapping[str, np.ndarray]
    label: np.ndarray
    body_mask: np.ndarray
    bias_field: np.ndarray
    params: PhysicsParams
    class_names: tuple[str, ...] = field(default=SUPERCLASS_NAMES)
    simulated: bool = True
    note: str = SIMULATED_NOTE


def _check_field(field_t: float) -> float:
    if field_t not in FIELDS_T:
        raise ValidationError(f"field_t must be one of {FIELDS_T} tesla (the tissue table's fields), got {field_t!r}.")
    return float(field_t)


def _resolve(contrasts: Sequence[str | SequencePreset | GradientEchoPreset], field_t: float):
    presets = abdominal_presets(field_t)
    if isinstance(contrasts, (str, SequencePreset, GradientEchoPreset)):
        contrasts = (contrasts,)
    if not contrasts:
        raise ValidationError(f"contrasts must name at least one of {list(presets)}, got ().")
    out = []
    for c in contrasts:
        if isinstance(c, (SequencePreset, GradientEchoPreset)):
            out.append(c)
        elif isinstance(c, str) and c in presets:
            out.append(presets[c])
        else:
            raise ValidationError(
                f"contrasts: {c!r} is not an abdominal preset; known: {list(presets)}.{closest(str(c), presets)} "
                "Or pass a SequencePreset / GradientEchoPreset record."
            )
    names = [p.name for p in out]
    if len(set(names)) != len(names):
        raise ValidationError(f"contrasts must not repeat a name, got {names}.")
    return tuple(out)


def tissue_signal(
    tissue: str,
    preset: SequencePreset | GradientEchoPreset,
    *,
    field_t: float,
    blood: str = "static",
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> tuple[float, float]:
    """``(water, fat)`` signal of one pure tissue (before the fat phase), literature values times ``scale``
    ``(T1, T2, PD)`` factors."""
    t = ABDOMINAL_TISSUES[tissue]
    t1, t2 = t.relaxation(field_t)
    f1, f2 = ABDOMINAL_TISSUES["fat"].relaxation(field_t)
    pd = t.pd * scale[2]
    water = pd * (1.0 - t.fat_fraction) * signal_equation(1.0, t1 * scale[0], t2 * scale[1], preset)
    fat = pd * t.fat_fraction * signal_equation(1.0, f1, f2, preset)
    if tissue == "blood" and blood == "flowing":
        if isinstance(preset, GradientEchoPreset):  # inflow: fresh, fully relaxed spins
            water = pd * math.sin(math.radians(preset.flip_deg)) * math.exp(-preset.te_ms / (t2 * scale[1]))
        else:  # flow void
            water = _FLOW_VOID * water
    return float(water), float(fat)


def class_signals(
    preset: SequencePreset | GradientEchoPreset | str, *, field_t: float = 1.5, blood: str = "static"
) -> dict[str, float]:
    """Noise-free mean signal of each super-class (mixture-weighted, literature values; background = body
    tissue). The expected region contrast of :func:`simulate_abdominal_mr` without variability."""
    field_t = _check_field(field_t)
    check_choice("blood", blood, BLOOD_MODES)
    (preset,) = _resolve((preset,), field_t)
    out = {}
    for name in SUPERCLASS_NAMES:
        mix = BODY_MIXTURE if name == "background" else SUPERCLASS_MIXTURES[name]
        w = f = 0.0
        for t, weight in zip(mix.tissues, mix.weights, strict=True):
            tw, tf = tissue_signal(t, preset, field_t=field_t, blood=blood)
            w, f = w + weight * tw, f + weight * tf
        out[name] = float(fat_water_signal(np.float64(w), np.float64(f), preset, field_t=field_t))
    return out


def _body_mask(label: np.ndarray, margin: int) -> np.ndarray:
    """Labelled voxels grown by ``margin`` voxels in-plane, holes filled slice by slice (the body outline)."""
    fg = label > 0
    structure = np.zeros((3, 3, 3), bool)
    structure[:, :, 1] = ndimage.generate_binary_structure(2, 1)
    grown = ndimage.binary_dilation(fg, structure=structure, iterations=margin) if margin > 0 else fg
    return np.stack([ndimage.binary_fill_holes(grown[..., z]) for z in range(grown.shape[-1])], axis=-1)


def simulate_abdominal_mr(
    label: np.ndarray,
    *,
    seed: int,
    contrasts: Sequence[str | SequencePreset | GradientEchoPreset] = ("T1w", "T2w", "in_phase", "opposed_phase"),
    field_t: float = 1.5,
    variability: float = 0.08,
    heterogeneity: float = 0.5,
    blur: float = 0.6,
    bias: float = 0.15,
    noise: float = 0.03,
    blood: str = "static",
    body_margin: int = 6,
    body_mask: np.ndarray | None = None,
) -> SimulatedAbdominalMR:
    """Simulate MR contrasts of ``label`` (2D ``(X, Y)`` or 3D ``(X, Y, Z)``, super-class ids 0..8).

    Args:
        label: integer map in :data:`SUPERCLASS_NAMES` ids (``synthaug.data.vocabulary.superclass_vocabulary``).
        seed: seeds every random draw (same seed, same arrays).
        contrasts: names from :func:`synthaug.data.mr_simulator.abdominal_presets` (``T1w``, ``T2w``,
            ``in_phase``, ``opposed_phase``) or custom preset records.
        field_t: 1.5 or 3.0 tesla (tissue values and in/opposed-phase echo times follow).
        variability: relative standard deviation of the per-region T1/T2/PD factors (clipped to [0.5, 1.5]).
        heterogeneity: strength of the smooth tissue patches inside mixed regions (0 = uniform mixture).
        blur: partial-volume Gaussian sigma in voxels (in-plane) applied to the water and fat signals.
        bias: standard deviation of the log of the smooth bias field (0 = none).
        noise: complex noise standard deviation relative to the median foreground signal (0 = none).
        blood: ``"static"`` or ``"flowing"`` (flow void on spin echo, inflow on gradient echo).
        body_margin: voxels by which the labelled region is grown (holes filled) to make the body outline,
            when ``body_mask`` is not given; background inside the body is fat/soft tissue, outside air.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValidationError(f"seed must be a non-negative int, got {seed!r}.")
    field_t = _check_field(field_t)
    presets = _resolve(contrasts, field_t)
    check_range("variability", variability, 0.0, 0.5)
    check_positive("heterogeneity", heterogeneity, allow_zero=True)
    check_positive("blur", blur, allow_zero=True)
    check_positive("bias", bias, allow_zero=True)
    check_positive("noise", noise, allow_zero=True)
    check_choice("blood", blood, BLOOD_MODES)
    if isinstance(body_margin, bool) or not isinstance(body_margin, int) or body_margin < 0:
        raise ValidationError(f"body_margin must be a non-negative int (voxels), got {body_margin!r}.")
    lab = np.asarray(label)
    if lab.ndim not in (2, 3):
        raise ShapeError(f"label must be a 2D (X, Y) or 3D (X, Y, Z) map, got shape {lab.shape}.")
    if not np.issubdtype(lab.dtype, np.integer):
        raise LabelError(f"label must hold integer super-class ids, got dtype {lab.dtype}.")
    if lab.size and (lab.min() < 0 or lab.max() >= len(SUPERCLASS_NAMES)):
        raise LabelError(
            f"label holds values outside 0..{len(SUPERCLASS_NAMES) - 1} (the super-class vocabulary "
            f"{list(SUPERCLASS_NAMES)}); map TotalSegmentator labels with to_superclasses(to_shared(...)) first."
        )
    flat2d = lab.ndim == 2
    lab3 = lab[..., None] if flat2d else lab
    if body_mask is None:
        body = _body_mask(lab3, body_margin)
    else:
        body = np.asarray(body_mask, bool)
        body = body[..., None] if flat2d else body
        if body.shape != lab3.shape:
            raise ShapeError(f"body_mask shape {np.shape(body_mask)} must equal the label's {lab.shape}.")
    shape = lab3.shape
    patch_rng, param_rng, bias_rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(4))

    # Regions: background inside the body (body tissue), outside (air), then super-classes 1..8.
    regions: list[tuple[np.ndarray, TissueMixture]] = [
        ((lab3 == 0) & body, BODY_MIXTURE),
        ((lab3 == 0) & ~body, TissueMixture(("air",), (1.0,))),
    ]
    regions += [(lab3 == i, SUPERCLASS_MIXTURES[n]) for i, n in enumerate(SUPERCLASS_NAMES) if i > 0]
    water = {p.name: np.zeros(shape, np.float32) for p in presets}
    fat = {p.name: np.zeros(shape, np.float32) for p in presets}
    for mask, mix in regions:  # 10 regions, each a handful of tissues: small fixed loops
        n_t = len(mix.tissues)
        scales = np.clip(1.0 + variability * param_rng.standard_normal((n_t, 3)), 0.5, 1.5)
        fields = _smooth_fields(patch_rng, shape, n_t) if n_t > 1 else None
        if not mask.any():
            continue
        if n_t > 1 and heterogeneity > 0:
            logits = np.log(np.asarray(mix.weights, np.float32))[:, None] + heterogeneity * fields[:, mask]
            w = np.exp(logits - logits.max(0))
            w /= w.sum(0)
        else:
            w = np.asarray(mix.weights, np.float32)[:, None].repeat(int(mask.sum()), 1)
        for p in presets:
            sw = np.zeros(int(mask.sum()), np.float32)
            sf = np.zeros_like(sw)
            for k, t in enumerate(mix.tissues):
                tw, tf = tissue_signal(t, p, field_t=field_t, blood=blood, scale=tuple(scales[k]))
                sw += w[k] * tw
                sf += w[k] * tf
            water[p.name][mask] = sw
            fat[p.name][mask] = sf

    bias_field = np.exp(bias * _smooth_fields(bias_rng, shape, 1)[0]).astype(np.float32) if bias > 0 else np.ones(shape, np.float32)
    sigma = (blur, blur, 0.0)
    images: dict[str, np.ndarray] = {}
    for p in presets:
        wmap, fmap = water[p.name], fat[p.name]
        if blur > 0:
            wmap, fmap = ndimage.gaussian_filter(wmap, sigma), ndimage.gaussian_filter(fmap, sigma)
        img = fat_water_signal(wmap, fmap, p, field_t=field_t).astype(np.float32) * bias_field
        if noise > 0:
            fg = img[lab3 > 0]
            ref = float(np.median(fg)) if fg.size else float(img.mean())
            s = np.float32(noise * max(ref, 1e-6))
            re = img + s * noise_rng.standard_normal(shape, dtype=np.float32)
            im = s * noise_rng.standard_normal(shape, dtype=np.float32)
            img = np.sqrt(re * re + im * im)
        images[p.name] = img[..., 0] if flat2d else img
    params = PhysicsParams(
        seed=int(seed), contrasts=presets, field_t=field_t, variability=float(variability),
        heterogeneity=float(heterogeneity), blur=float(blur), bias=float(bias), noise=float(noise), blood=blood,
        body_margin=int(body_margin),
    )
    squeeze = (lambda a: a[..., 0]) if flat2d else (lambda a: a)  # noqa: E731
    return SimulatedAbdominalMR(
        MappingProxyType(images), lab, squeeze(body), squeeze(bias_field), params,
    )
