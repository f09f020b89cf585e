"""Argument and input validation with messages that name the parameter, the rule and the value.

Used by constructors and by the public entry points of transforms and trainers; never
``assert`` (asserts vanish under ``python -O``).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from synthaug.errors import LabelError, ShapeError, ValidationError

__all__ = [
    "closest",
    "check_choice",
    "check_positive",
    "check_range",
    "check_probability",
    "check_int",
    "check_axis",
    "check_image",
    "check_labels",
    "check_same_spatial",
    "check_folder",
    "make_generator",
]


def closest(name: str, options: Iterable[str]) -> str:
    """A ``" Did you mean 'x'?"`` suffix, or an empty string when nothing is close."""
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f" Did you mean {match[0]!r}?" if match else ""


def check_choice(name: str, value: str, options: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``options``; else raise naming the closest option."""
    if value not in options:
        raise ValidationError(
            f"{name}={value!r} is not one of {sorted(options)}.{closest(str(value), options)}"
        )
    return value


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    ok = value >= 0 if allow_zero else value > 0
    if not ok or value != value:  # NaN check
        rule = ">= 0" if allow_zero else "> 0"
        raise ValidationError(f"{name} must be {rule}, got {value!r}.")
    return value


def check_range(name: str, value: float, low: float, high: float) -> float:
    if not (low <= value <= high):
        raise ValidationError(f"{name} must lie in [{low}, {high}], got {value!r}.")
    return value


def check_probability(name: str, value: float) -> float:
    return check_range(name, float(value), 0.0, 1.0)


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int (an integral float is accepted; a bool or a fraction is not), inside [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or int(value) != value:
        raise ValidationError(f"{name} must be an integer, got {value!r}.")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        rule = f">= {low}" if high is None else (f"<= {high}" if low is None else f"in [{low}, {high}]")
        raise ValidationError(f"{name} must be {rule}, got {value!r}.")
    return v


def check_axis(name: str, value: Any, dims: int = 3) -> int:
    """A spatial axis index 0..dims-1 (of the image without its channel axis)."""
    return check_int(name, value, low=0, high=dims - 1)


def check_image(
    image: torch.Tensor,
    name: str = "image",
    *,
    spatial_dims: Sequence[int] = (2, 3),
    channels: int | None = None,
    batched: bool = False,
) -> torch.Tensor:
    """Check an image tensor: floating dtype, finite, ``(B,) C, *spatial`` with known ``spatial_dims``.

    Returns the tensor unchanged. Errors name the expected layout and what was received.
    """
    if not isinstance(image, torch.Tensor):
        raise ValidationError(f"{name} must be a torch.Tensor, got {type(image).__name__}.")
    lead = 2 if batched else 1
    layout = ("B, " if batched else "") + "C, " + "spatial..."
    if image.ndim - lead not in spatial_dims:
        raise ShapeError(
            f"{name} must have shape ({layout}) with {' or '.join(map(str, spatial_dims))} spatial "
            f"dimensions, got shape {tuple(image.shape)} ({image.ndim} dimensions). "
            "Add the channel dimension with image[None] if it is missing."
        )
    if channels is not None and image.shape[lead - 1] != channels:
        raise ShapeError(
            f"{name} must have {channels} channel(s) in dimension {lead - 1}, got shape {tuple(image.shape)}."
        )
    if not image.is_floating_point():
        raise ValidationError(
            f"{name} must be a floating-point tensor, got dtype {image.dtype}. Convert it with .float()."
        )
    if not bool(torch.isfinite(image).all()):
        n_bad = int((~torch.isfinite(image)).sum())
        raise ValidationError(
            f"{name} contains {n_bad} NaN or infinite value(s). Replace them (e.g. torch.nan_to_num) first."
        )
    return image


def check_labels(
    labels: torch.Tensor,
    name: str = "label",
    *,
    known: Sequence[int] | None = None,
    allow_empty: bool = False,
) -> torch.Tensor:
    """Check an integer label map; with ``known``, every value must be one of them.

    Float tensors holding whole numbers (as MONAI loads them) are accepted and returned as int64.
    """
    if not isinstance(labels, torch.Tensor):
        raise ValidationError(f"{name} must be a torch.Tensor, got {type(labels).__name__}.")
    if labels.is_floating_point():
        if not bool(torch.isfinite(labels).all()):
            raise LabelError(f"{name} contains NaN or infinite values; a label map must hold integers.")
        rounded = labels.round()
        if not bool((rounded == labels).all()):
            raise LabelError(
                f"{name} holds non-integer values (e.g. {labels[rounded != labels].flatten()[0].item():g}); "
                "a label map must hold integer class ids. Was an image passed as the label, or was the "
                "label resampled with linear interpolation? Use nearest-neighbour."
            )
        labels = rounded.long()
    elif labels.dtype == torch.bool:
        labels = labels.long()
    elif labels.dtype not in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64):
        raise ValidationError(f"{name} must hold integers, got dtype {labels.dtype}.")
    present = torch.unique(labels)
    if not allow_empty and bool((present == 0).all()):
        raise LabelError(f"{name} is empty (only background 0); there is nothing to synthesise from.")
    if known is not None:
        known_t = torch.as_tensor(list(known), device=present.device, dtype=present.dtype)
        unknown = present[~torch.isin(present, known_t)]
        if unknown.numel():
            raise LabelError(
                f"{name} holds label value(s) {unknown.tolist()} that the generator does not know; it knows "
                f"{sorted(int(k) for k in known)}. Map your labels to the generator's vocabulary first "
                "(synthaug.data.vocabulary) or use weights trained on your label set."
            )
    return labels


def check_same_spatial(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str], *, lead: int = 1) -> None:
    """Raise if the spatial shapes (after ``lead`` leading dims) of ``a`` and ``b`` differ."""
    if tuple(a.shape[lead:]) != tuple(b.shape[lead:]):
        raise ShapeError(
            f"{names[0]} and {names[1]} must share their spatial shape, got {tuple(a.shape)} and "
            f"{tuple(b.shape)}. Resample the label onto the image grid (nearest-neighbour) first."
        )


def check_folder(name: str, path: str | os.PathLike[str]) -> Path:
    """``path`` as a :class:`~pathlib.Path` of a folder to work in: absent (made later) or a folder, never a file."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValidationError(f"{name} {p} is a file, not a folder; give a folder path (it is made when missing).")
    return p


def make_generator(seed: int | torch.Generator | None, device: Any = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` from a seed, or the given generator; ``None`` draws a seed."""
    if isinstance(seed, torch.Generator):
        return seed
    g = torch.Generator(device=torch.device(device))
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g
