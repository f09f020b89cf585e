"""Intensity conventions: how raw scanner values map to the generators' [-1, 1] range and back.

A convention is a small typed record stored in every model card, so a transform can normalise its
input exactly as the generator was trained and map the output back to the input's own scale:

- ``IntensityConvention.ct_window(-160, 240)``: Hounsfield units clipped to a window, linear to [-1, 1];
  the inverse is exact inside the window; values outside it (air, lung, dense bone) are not
  representable by a generator, so image-to-image transforms put the input's own values back there
  (:meth:`IntensityConvention.keep_outside_window`).
- ``IntensityConvention.percentile(1, 99)``: MR (arbitrary units) clipped to the volume's own
  percentiles, linear to [-1, 1] (the NEC recipe). The percentile values are measured per volume, so
  the inverse uses the same volume's values (see :func:`fit`).

>>> import torch
>>> conv = IntensityConvention.ct_window(-100.0, 100.0)
>>> conv.normalise(torch.tensor([-100.0, 0.0, 100.0])).tolist()
[-1.0, 0.0, 1.0]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from synthaug._validate import check_choice, check_range
from synthaug.errors import ValidationError

__all__ = ["IntensityConvention", "IntensityFit"]

_KINDS = ("ct_window", "percentile")


def _min_gap(low: float) -> float:
    return max(1e-6, abs(low) * 1e-6)


@dataclass(frozen=True)
class IntensityFit:
    """The two raw values that map to -1 and +1 for one volume (fitted or fixed)."""

    low: float
    high: float


@dataclass(frozen=True)
class IntensityConvention:
    """How raw intensities map to [-1, 1]: a fixed CT window or per-volume MR percentiles."""

    kind: str
    low: float
    high: float

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, _KINDS)
        if self.kind == "percentile":
            check_range("low", self.low, 0.0, 100.0)
            check_range("high", self.high, 0.0, 100.0)
        if not self.low < self.high:
            raise ValidationError(f"IntensityConvention needs low < high, got low={self.low}, high={self.high}.")

    @classmethod
    def ct_window(cls, low_hu: float = -160.0, high_hu: float = 240.0) -> IntensityConvention:
        return cls("ct_window", float(low_hu), float(high_hu))

    @classmethod
    def percentile(cls, low: float = 1.0, high: float = 99.0) -> IntensityConvention:
        return cls("percentile", float(low), float(high))

    def fit(self, volume: torch.Tensor, mask: torch.Tensor | None = None) -> IntensityFit:
        """The raw values that map to -1/+1 for ``volume`` (batched callers fit per sample)."""
        if self.kind == "ct_window":
            return IntensityFit(self.low, self.high)
        values = volume[mask.bool()] if mask is not None else volume.reshape(-1)
        if values.numel() == 0:
            raise ValidationError("cannot fit percentile intensities on an empty volume or mask.")
        # Large volumes: quantile on a strided subsample keeps this fast and deterministic.
        step = max(1, values.numel() // 2_000_000)
        q = torch.quantile(values[::step].float(), torch.tensor([self.low / 100, self.high / 100], device=values.device))
        low, high = float(q[0]), float(q[1])
        if high - low <= _min_gap(low):
            high = low + max(1.0, _min_gap(low))
        return IntensityFit(low, high)

    def fit_batch(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample (low, high) tensors of shape (B,) for a batch ``(B, ...)``; no host round trip."""
        b = images.shape[0]
        if self.kind == "ct_window":
            low = images.new_full((b,), self.low)
            high = images.new_full((b,), self.high)
            return low, high
        flat = images.reshape(b, -1)
        step = max(1, flat.shape[1] // 1_000_000)
        qs = torch.tensor([self.low / 100, self.high / 100], device=images.device, dtype=images.dtype)
        q = torch.quantile(flat[:, ::step], qs, dim=1)
        # A constant (or near-constant) volume has no range: widen it so that (x - low) / (high - low) stays
        # finite in float32 whatever the intensity level (a fixed 1e-6 vanishes next to e.g. 1000).
        gap = torch.clamp(q[0].abs() * 1e-3, min=1.0)
        low, high = q[0], torch.where(q[1] - q[0] > gap * 1e-3, q[1], q[0] + gap)
        return low, high

    @staticmethod
    def _expand(v: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor | float:
        if isinstance(v, torch.Tensor) and v.ndim == 1:
            return v.reshape(-1, *([1] * (like.ndim - 1)))
        return v

    def normalise(self, x: torch.Tensor, fit: IntensityFit | tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Raw -> [-1, 1] (clipped). ``fit`` defaults to this convention's fixed window."""
        low, high = self._bounds(x, fit)
        if isinstance(low, torch.Tensor):
            x = torch.minimum(torch.maximum(x, low), high)
        else:
            x = x.clamp(min=low, max=high)
        return (x - low) / (high - low) * 2 - 1

    def denormalise(self, y: torch.Tensor, fit: IntensityFit | tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """[-1, 1] -> raw scale of the fit (the input's own scale for percentile conventions)."""
        low, high = self._bounds(y, fit)
        return (y + 1) / 2 * (high - low) + low

    def keep_outside_window(self, out: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """``reference`` where it lies outside a fixed window, ``out`` elsewhere (raw units, same shape).

        A CT-window generator saturates at the window's ends, so its output has air at the window floor
        (e.g. -200 HU instead of -1000) and bone capped at the ceiling; a segmenter trained on such images
        sees a background no real scan has. The input's own out-of-window values (aligned with the output,
        i.e. deformed with the same field) are exact, so they are put back. Percentile conventions (MR,
        per-volume ranges) return ``out`` unchanged.

        >>> conv = IntensityConvention.ct_window(-200.0, 300.0)
        >>> conv.keep_outside_window(torch.tensor([-200.0, 40.0, 300.0]), torch.tensor([-1000.0, 10.0, 900.0])).tolist()
        [-1000.0, 40.0, 900.0]
        """
        if self.kind != "ct_window":
            return out
        if reference.shape != out.shape:
            raise ValidationError(
                f"keep_outside_window needs the reference in the output's shape, got {tuple(reference.shape)} "
                f"and {tuple(out.shape)}."
            )
        ref = reference.to(device=out.device, dtype=out.dtype)
        return torch.where((ref < self.low) | (ref > self.high), ref, out)

    def _bounds(self, x: torch.Tensor, fit: Any) -> tuple[Any, Any]:
        if fit is None:
            if self.kind != "ct_window":
                raise ValidationError("a percentile convention needs a fit (IntensityConvention.fit) to (de)normalise.")
            return self.low, self.high
        if isinstance(fit, IntensityFit):
            return fit.low, fit.high
        low, high = fit
        return self._expand(low, x), self._expand(high, x)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IntensityConvention:
        return cls(str(d["kind"]), float(d["low"]), float(d["high"]))
