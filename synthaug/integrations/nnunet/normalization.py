"""nnU-Net's intensity normalisation, inverted and re-applied around synthaug's batch synthesiser.

The batch synthesiser (:class:`synthaug.recipes.BatchSynthesizer`) takes the raw <-> normalised mapping from
its caller; this module is nnU-Net's:

- ``CTNormalization`` is inverted exactly with the dataset fingerprint (``x * std + mean``) and re-applied
  (clip to percentile_00_5/99_5, ``(x - mean) / std``);
- per-image schemes (``ZScoreNormalization``, ``RescaleTo01Normalization``) lost the raw scale, so the
  normalised values are handed over as they are (the generators' percentile convention is invariant to
  any per-image affine map), or, for a fixed-window (CT) generator, mapped to approximate raw units by
  matching the patch's foreground mean/std to the fingerprint's foreground mean/std; the output is
  re-z-scored to the real patch's mean and standard deviation over the synthesised voxels
  (``ZScoreNormalization``) or matched to the real patch's range (``RescaleTo01Normalization``).

:func:`nnunet_targets` is nnU-Net's last training transforms (``-1 -> 0``, regions, deep supervision) batched
on the device, run by the trainer after synthesis.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from synthaug._validate import closest
from synthaug.errors import ValidationError
from synthaug.recipes.batch import IntensityMapping, regenerate_deep_supervision

__all__ = ["SCHEMES", "ChannelNormalization", "NnUNetIntensityMapping", "intensity_for", "nnunet_targets"]

SCHEMES = (
    "CTNormalization",
    "ZScoreNormalization",
    "RescaleTo01Normalization",
    "RGBTo01Normalization",
    "NoNormalization",
)
_EPS = 1e-8

@dataclass(frozen=True)
class ChannelNormalization:
    """nnU-Net's normalisation of one input channel and the fingerprint's foreground intensities.

    ``properties`` is ``plans["foreground_intensity_properties_per_channel"][str(channel)]`` (raw
    intensities of the training foreground: ``mean``, ``std``, ``percentile_00_5``, ``percentile_99_5``).
    """

    scheme: str
    properties: Mapping[str, float] = field(default_factory=dict)
    use_mask_for_norm: bool = False

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValidationError(
                f"normalisation scheme {self.scheme!r} is not supported by synthaug's nnU-Net integration; "
                f"supported: {list(SCHEMES)}.{closest(self.scheme, SCHEMES)}"
            )
        if self.scheme == "CTNormalization":
            self._need("mean", "std", "percentile_00_5", "percentile_99_5")

    def _need(self, *keys: str) -> None:
        missing = [k for k in keys if k not in self.properties]
        if missing:
            raise ValidationError(
                f"{self.scheme} needs the dataset fingerprint's foreground intensity properties {list(keys)}; "
                f"missing {missing}. Pass plans['foreground_intensity_properties_per_channel'][channel] "
                "(written by nnUNetv2_plan_and_preprocess)."
            )

    @classmethod
    def from_plans(cls, plans: Mapping[str, Any], configuration: str, channel: int = 0) -> ChannelNormalization:
        """From a plans dict (as in ``nnUNetPlans.json``; follows ``inherits_from``)."""
        configs = plans.get("configurations", {})
        if configuration not in configs:
            raise ValidationError(
                f"plans have no configuration {configuration!r}; known: {sorted(configs)}.{closest(configuration, configs)}"
            )
        cfg, seen = dict(configs[configuration]), {configuration}
        while "inherits_from" in cfg and cfg["inherits_from"] not in seen:
            parent = cfg.pop("inherits_from")
            seen.add(parent)
            cfg = {**configs[parent], **cfg}
        props = plans.get("foreground_intensity_properties_per_channel", {}).get(str(channel), {})
        return cls(
            scheme=cfg["normalization_schemes"][channel],
            properties=dict(props),
            use_mask_for_norm=bool(cfg.get("use_mask_for_norm", [False] * (channel + 1))[channel]),
        )


def _masked_moments(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample mean and population std of ``x`` over ``mask`` (both ``(B, 1, *sp)``) -> ``(B,)`` each."""
    m = mask.flatten(1).to(x.dtype)
    v = x.flatten(1)
    n = m.sum(1).clamp_min(1.0)
    mean = (v * m).sum(1) / n
    var = (((v - mean[:, None]) ** 2) * m).sum(1) / n
    return mean, var.sqrt()


def _masked_range(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    v = x.flatten(1)
    m = mask.flatten(1)
    big = torch.finfo(x.dtype).max
    lo = torch.where(m, v, torch.full_like(v, big)).amin(1)
    hi = torch.where(m, v, torch.full_like(v, -big)).amax(1)
    return lo, hi


def _bc(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (like.ndim - 1)))


class NnUNetIntensityMapping:
    """nnU-Net-normalised values <-> the raw scale a transform works in (see the module docstring).

    ``fixed_scale`` is True for generators with a fixed intensity window (CT Hounsfield units): those need
    real raw units; percentile-convention generators work on any per-image affine rescaling.
    """

    def __init__(self, normalization: ChannelNormalization, *, fixed_scale: bool) -> None:
        self.norm = normalization
        self.fixed_scale = bool(fixed_scale)
        if self.fixed_scale and normalization.scheme in ("ZScoreNormalization", "RescaleTo01Normalization"):
            normalization._need("mean", "std")

    def to_raw(self, x: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, 1, *sp)`` normalised -> raw. ``labels``: generator labels (0 = background)."""
        s, p = self.norm.scheme, self.norm.properties
        if s == "CTNormalization":
            return x * max(float(p["std"]), _EPS) + float(p["mean"])
        if s == "RGBTo01Normalization":
            return x * 255.0
        if s == "NoNormalization" or not self.fixed_scale:
            return x
        # Per-image scheme + fixed-window generator: estimate the lost affine map from the foreground.
        fg = valid & (labels > 0)
        enough = fg.flatten(1).sum(1) >= 2
        mask = torch.where(_bc(enough, fg), fg, valid)
        mean, std = _masked_moments(x, mask)
        a = float(p["std"]) / std.clamp_min(1e-6)
        b = float(p["mean"]) - a * mean
        return _bc(a, x) * x + _bc(b, x)

    def from_raw(self, y: torch.Tensor, x_ref: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Raw output ``y`` -> the plan's normalisation; ``x_ref`` is the real normalised sample."""
        s, p = self.norm.scheme, self.norm.properties
        if s == "CTNormalization":
            y = y.clamp(float(p["percentile_00_5"]), float(p["percentile_99_5"]))
            return (y - float(p["mean"])) / max(float(p["std"]), _EPS)
        if s == "ZScoreNormalization":
            my, sy = _masked_moments(y, valid)
            mx, sx = _masked_moments(x_ref, valid)
            return (y - _bc(my, y)) / _bc(sy.clamp_min(_EPS), y) * _bc(sx, y) + _bc(mx, y)
        if s == "RescaleTo01Normalization":
            ly, hy = _masked_range(y, valid)
            lx, hx = _masked_range(x_ref, valid)
            return (y - _bc(ly, y)) / _bc((hy - ly).clamp_min(_EPS), y) * _bc(hx - lx, y) + _bc(lx, y)
        if s == "RGBTo01Normalization":
            return y / 255.0
        return y


def intensity_for(normalization: ChannelNormalization) -> Callable[[Any], IntensityMapping]:
    """The mapping factory the batch synthesiser takes: one mapping per transform, from its model card.

    Generators with a fixed intensity window (CT in HU, ``card.intensity_convention.kind == "ct_window"``)
    need real raw units; percentile-convention and generator-free transforms work on any affine rescaling.
    """

    def factory(card: Any) -> IntensityMapping:
        fixed = card is not None and card.intensity_convention.kind == "ct_window"
        return NnUNetIntensityMapping(normalization, fixed_scale=fixed)

    return factory


def nnunet_targets(
    seg: torch.Tensor,
    *,
    ds_scales: Sequence[Sequence[float]] | None = None,
    regions: Sequence[Any] | None = None,
    ignore_label: int | None = None,
) -> torch.Tensor | list[torch.Tensor]:
    """nnU-Net's last training transforms, batched on the device: ``-1 -> 0``, regions, deep supervision.

    Equivalent to ``RemoveLabelTransform(-1, 0)``, ``ConvertSegmentationToRegionsTransform`` and
    ``DownsampleSegForDSTransform`` applied per sample (``seg`` is ``(B, 1, *sp)``).
    """
    seg = torch.where(seg == -1, torch.zeros_like(seg), seg)
    if regions is not None:
        regs = list(regions) + ([ignore_label] if ignore_label is not None else [])
        members = [[r] if isinstance(r, int) else [int(v) for v in r] for r in regs]
        top = max(int(seg.max()), max(max(m) for m in members)) + 1
        lut = torch.zeros(top, len(members), dtype=torch.bool, device=seg.device)
        for j, m in enumerate(members):  # a few regions, not a per-voxel loop
            lut[torch.tensor([v for v in m if v >= 0], dtype=torch.long, device=seg.device), j] = True
        seg = lut[seg[:, 0].long().clamp_min(0)].movedim(-1, 1)
    if ds_scales is None:
        return seg
    shapes = []
    for s in ds_scales:
        s = list(s) if isinstance(s, (list, tuple)) else [s] * (seg.ndim - 2)
        shapes.append([round(i * j) for i, j in zip(seg.shape[2:], s)])
    return regenerate_deep_supervision(seg, shapes)


