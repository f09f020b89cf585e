"""The physics prior as its own augmentation: abdominal label maps rendered as *simulated* MR, no generator.

:class:`SimulatedMRSynth` replaces the image by a simulated MR rendering of its label map
(:func:`synthaug.appearance.physics.simulate_abdominal_mr`: literature tissue T1/T2/PD and fat fraction at 1.5 or 3
T, spin echo T1w/T2w or spoiled gradient echo in/opposed phase, per-region variability, tissue patches, partial
volume blur, bias field, Rician noise). Per sample a contrast and a field strength are drawn from the options; the
output is mapped to the input's intensity range (``output_range="input"``) so a per-image normalisation afterwards
(z-score, nnU-Net) sees the usual magnitudes. Labels are returned untouched. Everything it makes is simulated:
call it so.

The simulation runs in numpy on the host, one sample at a time (a few tens of ms per 2D slice): a baseline and an
appearance source, not a hot-path generator.

Example:
    >>> import torch
    >>> t = SimulatedMRSynth(labels_are_classes=True)
    >>> label = torch.zeros(1, 32, 32, dtype=torch.long); label[:, 8:24, 8:24] = 1
    >>> out, same = t.apply(torch.zeros(1, 32, 32), label, t.params_from_seed(0))
    >>> out.shape == label.shape and same is label
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from synthaug.errors import ValidationError
from synthaug.transforms.labels import (
    LabelOptions,
    check_image_label_batch,
    resolve_classes,
    to_generator_classes,
)
from synthaug.transforms.options import OptionsTransform

__all__ = ["SimulatedMROptions", "SimulatedMRParams", "SimulatedMRSynth"]

_CONTRASTS = ("T1w", "T2w", "in_phase", "opposed_phase")
_FIELDS = (1.5, 3.0)


@dataclass(frozen=True)
class SimulatedMRParams:
    """Everything random about one call: replaying it gives the same output."""

    seed: int
    apply: bool


@dataclass(frozen=True)
class SimulatedMROptions(LabelOptions):
    """Options of :class:`SimulatedMRSynth` (and of its MONAI, TorchIO and recipe faces).

    Args:
        contrasts: contrasts drawn uniformly per sample (``T1w``, ``T2w``, ``in_phase``, ``opposed_phase``).
        fields_t: field strengths drawn uniformly per sample (1.5, 3.0 tesla).
        noise, bias, blur, variability: the simulator's noise level, bias-field strength, partial-volume blur
            and per-region tissue variability (:func:`synthaug.appearance.physics.simulate_abdominal_mr`).
        output_range: ``"input"`` (each sample's own [min, max]) or ``"unit"`` ([0, 1]).
        label_names, label_map, labels_are_classes: what your label values mean in the abdominal super-class
            vocabulary (:class:`~synthaug.transforms.labels.LabelOptions`).
    """

    contrasts: tuple[str, ...] = _CONTRASTS
    fields_t: tuple[float, ...] = _FIELDS
    noise: float = 0.03
    bias: float = 0.15
    blur: float = 0.6
    variability: float = 0.08
    output_range: str = "input"

    def validate(self) -> None:
        super().validate()
        contrasts = tuple(str(c) for c in self.contrasts)
        if not contrasts or any(c not in _CONTRASTS for c in contrasts):
            raise ValidationError(f"contrasts must be a non-empty subset of {list(_CONTRASTS)}, got {self.contrasts!r}.")
        fields = tuple(float(f) for f in self.fields_t)
        if not fields or any(f not in _FIELDS for f in fields):
            raise ValidationError(f"fields_t must be a non-empty subset of {list(_FIELDS)}, got {self.fields_t!r}.")
        self._set("contrasts", contrasts)
        self._set("fields_t", fields)
        for name in ("noise", "bias", "blur"):
            v = float(getattr(self, name))
            if not 0.0 <= v <= 5.0:
                raise ValidationError(f"{name} must lie in [0, 5], got {v!r}.")
            self._set(name, v)
        if not 0.0 <= float(self.variability) <= 0.5:
            raise ValidationError(f"variability must lie in [0, 0.5], got {self.variability!r}.")
        if self.output_range not in ("input", "unit"):
            raise ValidationError(f"output_range must be 'input' or 'unit', got {self.output_range!r}.")


class SimulatedMRSynth(OptionsTransform):
    """Render the label map as simulated abdominal MR (see the module docstring)."""

    Options = SimulatedMROptions
    options: SimulatedMROptions
    needs_foreground = False

    def _setup(self) -> None:
        from synthaug.appearance.physics import SUPERCLASS_NAMES

        self.class_names = SUPERCLASS_NAMES
        self._known = self.label_names is not None or self.label_map is not None or self.labels_are_classes
        # refuse a vocabulary it cannot render now; without one, the first call says what to give
        self._table = self._classes() if self._known else None

    def _classes(self) -> dict[int, int] | None:
        return resolve_classes(self.class_names, generator="simulated MR", label_map=self.label_map,
                               label_names=self.label_names, labels_are_classes=self.labels_are_classes)

    def params_from_seed(self, seed: int, apply: bool = True) -> SimulatedMRParams:
        return SimulatedMRParams(int(seed), bool(apply))

    @torch.no_grad()
    def apply_batch(self, images: torch.Tensor, labels: torch.Tensor, *, seeds: Sequence[int]
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``images`` (B, 1, *spatial) (read for their range only), ``labels`` (B, 1, *spatial); one seed per sample.
        Negative label values (nnU-Net's ``-1`` padding outside the cropped region) render as background.
        Returns the simulated images (the input's device and dtype) and ``labels`` untouched (the same object)."""
        from synthaug.appearance.physics import simulate_abdominal_mr

        lab = check_image_label_batch(images, labels, purpose="render", allow_empty=True).clamp_min(0)  # padding (-1) is background
        if len(seeds) != images.shape[0]:
            raise ValidationError(f"seeds must have one entry per sample ({images.shape[0]}), got {len(seeds)}.")
        table = self._table if self._known else self._classes()  # raises naming the three fixes
        classes = to_generator_classes(lab, generator_name="simulated MR", class_names=self.class_names,
                                       label_map=table).cpu().numpy().astype(np.int16)
        out = []
        for i, seed in enumerate(seeds):  # host-side simulation, one sample at a time (see the module docstring)
            g = torch.Generator().manual_seed(int(seed))
            contrast = self.contrasts[int(torch.randint(len(self.contrasts), (), generator=g))]
            field = self.fields_t[int(torch.randint(len(self.fields_t), (), generator=g))]
            sim = simulate_abdominal_mr(classes[i, 0], seed=int(torch.randint(0, 2**31 - 1, (), generator=g)),
                                        contrasts=(contrast,), field_t=field, noise=self.noise, bias=self.bias,
                                        blur=self.blur, variability=self.variability)
            img = torch.from_numpy(np.asarray(sim.images[contrast], np.float32))
            lo, hi = img.min(), img.max()
            out.append((img - lo) / (hi - lo).clamp_min(1e-6))
        y = torch.stack(out)[:, None].to(images.device)
        if self.output_range == "input":
            ref = images.flatten(1).float()
            lo, hi = ref.amin(1), ref.amax(1)
            y = lo.reshape(-1, *[1] * (y.ndim - 1)) + y * (hi - lo).reshape(-1, *[1] * (y.ndim - 1))
        return y.to(images.dtype), labels
