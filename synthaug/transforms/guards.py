"""Input guards from the model card: a generator refuses data it was not trained for, with the fix.

A bare tensor does not say what it holds. The framework faces read what they can from the container
(:class:`DataInfo`: a MetaTensor's affine and ``meta["labels"]``, a TorchIO image's spacing and ``labels``, an
nnU-Net plan's spacing and dataset.json) and every generator transform checks, before any work:

- **spacing**: the input's in-plane spacing against the card's training spacing (``spacing_tolerance``,
  relative): a 1 mm image in a 2 mm translator loses ~7 dB silently, so a mismatch is an error naming the
  resampling that fixes it (MONAI ``Spacingd``, TorchIO ``Resample``);
- **modality**: a generator that reads CT (its card's source modality, else its modality) refuses an input
  with no fat- or air-like value (< -50 HU) anywhere, e.g. an MR volume or a normalised CT (MR magnitudes are
  positive, z-scores stay within a few units; any CT in HU that holds fat, air or lung goes below, also a crop
  around the spine); one that reads MR refuses Hounsfield-like input (air < -400);
  ``check_modality=False`` turns it off (e.g. a CT crop inside one organ);
- **finite output**: a generator output is checked finite before it is returned (never NaN).

:class:`GuardOptions` declares the two options once for every generator transform's options record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from synthaug._validate import check_positive
from synthaug.errors import ShapeError, ValidationError
from synthaug.transforms.options import Options

__all__ = ["DataInfo", "GuardOptions", "check_spacing", "check_modality", "check_finite_output", "input_modality",
           "check_channel_modality", "channel_modality", "check_batch_guards",
           "AIR_HU", "FAT_HU"]

#: Below this a CT value is air or lung; an MR volume (arbitrary positive units) never goes there.
AIR_HU = -400.0
#: Below this a CT value is fat (about -100 HU), air or lung; MR magnitudes and normalised images do not go there.
FAT_HU = -50.0


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What the data container says about a sample that the tensor alone does not.

    Attributes:
        label_names: ``{name: value}`` of the label map (used when the transform's ``label_names`` option is unset).
        spacing: voxel size in mm per spatial axis of the image, in the tensor's axis order.
    """

    label_names: Mapping[str, int] | None = None
    spacing: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.spacing is not None:
            sp = tuple(float(s) for s in self.spacing)
            if not all(s > 0 for s in sp):
                raise ValidationError(f"spacing must be positive millimetres per axis, got {self.spacing!r}.")
            object.__setattr__(self, "spacing", sp)


@dataclasses.dataclass(frozen=True)
class GuardOptions(Options):
    """The input-guard options every generator transform shares (see :mod:`synthaug.transforms.guards`).

    Args:
        spacing_tolerance: largest relative difference between the input's in-plane spacing (when the data says
            it) and the generator's training spacing; None: not checked.
        check_modality: refuse input whose intensities do not look like the generator's modality (CT in HU
            without any fat- or air-like value, or Hounsfield-like data into an MR generator).
    """

    spacing_tolerance: float | None = 0.25
    check_modality: bool = True

    def validate(self) -> None:
        super().validate()
        if self.spacing_tolerance is not None:
            self._set("spacing_tolerance", float(check_positive("spacing_tolerance", float(self.spacing_tolerance))))
        self._set("check_modality", bool(self.check_modality))


def check_spacing(card: Any, spacing: Sequence[float] | None, *, slice_axis: int, tolerance: float | None,
                  dims: int) -> None:
    """Refuse an input whose spacing differs from the card's by more than ``tolerance`` (relative), naming the fix.

    ``spacing`` is per spatial axis of the input (``dims`` of them); a 2D generator compares the in-plane axes
    (all but ``slice_axis`` of a 3D input), a 3D one all axes.
    """
    if spacing is None or tolerance is None or not card.spacing:
        return
    sp = tuple(float(s) for s in spacing)
    if len(sp) != dims:
        raise ShapeError(f"spacing {sp} must give one value per spatial axis of the image ({dims}).")
    if card.spatial_dims == 2 and dims == 3:
        sp = tuple(s for a, s in enumerate(sp) if a != slice_axis)
    trained = tuple(float(s) for s in card.spacing)[: len(sp)]
    bad = [(a, s) for a, s in zip(trained, sp) if abs(s - a) / a > tolerance]
    if bad:
        raise ValidationError(
            f"generator {card.name!r} was trained at {list(trained)} mm but the input is at {[round(s, 3) for s in sp]} "
            f"mm (more than {tolerance:.0%} apart): its texture and context would be rendered at the wrong scale. "
            f"Resample the image and label to {list(trained)} mm first (MONAI: Spacingd(keys, pixdim=...), mode "
            "bilinear/nearest; TorchIO: tio.Resample(...)), or pass spacing_tolerance=None to accept it."
        )


def check_batch_guards(card: Any, images: torch.Tensor, *, seeds: Sequence[int], info: DataInfo | None,
                       slice_axis: int, spacing_tolerance: float | None, check_modality_on: bool) -> DataInfo:
    """The card-derived guards every generator transform runs on a batch ``(B, C, *spatial)``: spacing, modality and
    one seed per sample. Returns ``info`` (an empty :class:`DataInfo` when None)."""
    info = info or DataInfo()
    check_spacing(card, info.spacing, slice_axis=slice_axis, tolerance=spacing_tolerance, dims=images.ndim - 2)
    check_modality(card, images, enabled=check_modality_on)
    if len(seeds) != images.shape[0]:
        raise ValidationError(f"seeds must have one entry per sample ({images.shape[0]}), got {len(seeds)}.")
    return info


def input_modality(card: Any) -> str:
    """The modality a generator reads: its source modality (translators, unpaired style) or its modality."""
    return str(card.source_modality or card.modality or "")


def check_modality(card: Any, images: torch.Tensor, *, enabled: bool) -> None:
    """Refuse a batch whose intensities do not look like the modality the generator reads (one host read)."""
    modality = input_modality(card)
    if not enabled or not modality:
        return
    lows = images.detach().flatten(1).amin(1)
    if modality.upper() == "CT":
        no_fat = (lows > FAT_HU).nonzero().flatten().tolist()
        if no_fat:
            raise ValidationError(
                f"generator {card.name!r} reads CT in Hounsfield units, but sample(s) {no_fat} have no air-like value "
                f"and no fat-like one (minimum {float(lows[no_fat[0]]):.1f} > {FAT_HU:g} HU): this does not look like "
                "a CT volume in HU (an MR image, or a normalised CT). Give CT in HU, use a generator of your modality "
                "(synthaug weights list), or pass check_modality=False for a CT crop inside one organ."
            )
    else:
        hu = (lows < AIR_HU).nonzero().flatten().tolist()
        if hu:
            raise ValidationError(
                f"generator {card.name!r} reads {modality} MR, but sample(s) {hu} go down to "
                f"{float(lows[hu[0]]):.1f}, like CT air in Hounsfield units. Use a generator that reads CT "
                "(synthaug weights list), or pass check_modality=False if your MR intensities are signed."
            )


#: Prefixes of nnU-Net channel names that state an MR contrast (``T2w``, ``T1ce``, ``FLAIR``, ``MRI`` ...).
_MR_CHANNEL_PREFIXES = ("MR", "T1", "T2", "PD", "FLAIR", "DWI", "ADC", "SWI", "DIXON", "STIR")


def channel_modality(channel: str) -> str | None:
    """The modality an nnU-Net ``channel_names`` entry states: ``"CT"``, ``"MR"``, or None when it names only a
    normalisation (``zscore``, ``noNorm``, ``rescale_to_0_1`` ...) or something else, which says nothing about the
    intensities (a CT -> MR dataset stores CT in HU under ``zscore``)."""
    name = "".join(ch for ch in str(channel).upper() if ch.isalnum())
    if name == "CT":
        return "CT"
    if name.startswith(_MR_CHANNEL_PREFIXES):
        return "MR"
    return None


def check_channel_modality(card: Any, channel: str) -> None:
    """Refuse a generator that reads CT for a channel named as MR, or MR for a CT channel (nnU-Net
    ``channel_names``). A channel named by its normalisation only is left to the per-batch intensity check."""
    modality = input_modality(card)
    stated = channel_modality(channel) if channel else None
    if not modality or stated is None:
        return
    if (modality.upper() == "CT") != (stated == "CT"):
        raise ValidationError(
            f"generator {card.name!r} reads {modality}, but the dataset's channel is {channel!r} ({stated}). Use a "
            "generator of the dataset's modality (synthaug weights list), or a translation first."
        )


def check_finite_output(out: torch.Tensor, *, generator: str) -> torch.Tensor:
    """``out`` when finite; otherwise a clear error (never a NaN image handed to training)."""
    if not bool(torch.isfinite(out).all()):
        raise ValidationError(
            f"generator {generator!r} produced non-finite values for this input; this is a synthaug bug, please report "
            "it with the input's shape and intensity range. The sample was not returned."
        )
    return out
