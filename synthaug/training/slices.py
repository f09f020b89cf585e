"""2D training slices cut from 3D volumes: resampled, padded, intensity-normalised, label-mapped.

Generators train on 2D slices (~128x128) so a useful model trains on a CPU in well under an hour.
Everything is precomputed once into two tensors, then sampled with an explicit ``torch.Generator``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from synthaug._validate import check_choice
from synthaug.errors import ValidationError
from synthaug.intensity import IntensityConvention

__all__ = ["Volume", "SliceSet", "cut_slices", "pad_or_crop"]


@dataclass(frozen=True)
class Volume:
    """One 3D case: raw image, integer label already mapped to the model's vocabulary (0..N_L-1)."""

    case_id: str
    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float, float]


@dataclass
class SliceSet:
    """Normalised 2D slices: ``images`` (N, 1, H, W) in [-1, 1], ``labels`` (N, H, W) int64."""

    images: torch.Tensor
    labels: torch.Tensor
    case_ids: list[str]
    slice_index: list[int]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def sample(self, batch_size: int, *, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(self), (batch_size,), generator=generator)
        return self.images[idx], self.labels[idx]

    def subset(self, keep: torch.Tensor) -> SliceSet:
        keep_list = keep.nonzero().flatten().tolist()
        return SliceSet(
            self.images[keep], self.labels[keep], [self.case_ids[i] for i in keep_list],
            [self.slice_index[i] for i in keep_list],
        )


def pad_or_crop(array: np.ndarray, size: Sequence[int], fill: float) -> np.ndarray:
    """Centre-pad with ``fill`` or centre-crop the leading 2 axes to ``size``."""
    out = np.full(tuple(size) + array.shape[2:], fill, dtype=array.dtype)
    src, dst = [], []
    for n, m in zip(array.shape[:2], size):
        if n >= m:
            start = (n - m) // 2
            src.append(slice(start, start + m))
            dst.append(slice(0, m))
        else:
            start = (m - n) // 2
            src.append(slice(0, n))
            dst.append(slice(start, start + n))
    out[tuple(dst)] = array[tuple(src)]
    return out


def cut_slices(
    volumes: Sequence[Volume],
    *,
    intensity: IntensityConvention,
    axis: int = 2,
    spacing: float | None = None,
    size: tuple[int, int] = (128, 128),
    min_foreground: float = 0.01,
) -> SliceSet:
    """Slices along ``axis`` of every volume, in-plane resampled to ``spacing`` mm (None keeps native).

    Slices whose labelled (non-zero) fraction is below ``min_foreground`` are skipped. Intensities are
    normalised per volume with ``intensity`` (a CT window, or the volume's own percentiles).
    """
    check_choice("axis", str(axis), ("0", "1", "2"))
    if not volumes:
        raise ValidationError("cut_slices needs at least one volume.")
    images, labels, ids, index = [], [], [], []
    for vol in volumes:
        if vol.image.shape != vol.label.shape:
            raise ValidationError(
                f"case {vol.case_id!r}: image shape {vol.image.shape} != label shape {vol.label.shape}."
            )
        img_t = torch.from_numpy(np.ascontiguousarray(vol.image, dtype=np.float32))
        fit = intensity.fit(img_t)
        norm = intensity.normalise(img_t, fit).numpy()
        lab = vol.label
        img = np.moveaxis(norm, axis, -1)
        lab = np.moveaxis(lab, axis, -1)
        if spacing is not None:
            in_plane = [s for i, s in enumerate(vol.spacing) if i != axis]
            zoom = (in_plane[0] / spacing, in_plane[1] / spacing, 1.0)
            if not np.allclose(zoom, 1.0):
                img = ndimage.zoom(img, zoom, order=1)
                lab = ndimage.zoom(lab, zoom, order=0)
        img = pad_or_crop(img, size, -1.0)
        lab = pad_or_crop(lab, size, 0)
        for z in range(img.shape[-1]):
            fg = float((lab[..., z] > 0).mean())
            if fg < min_foreground:
                continue
            images.append(img[..., z])
            labels.append(lab[..., z])
            ids.append(vol.case_id)
            index.append(z)
    if not images:
        raise ValidationError(
            f"no slice has a labelled fraction >= min_foreground={min_foreground}; lower it or check the labels."
        )
    return SliceSet(
        torch.from_numpy(np.stack(images)[:, None].astype(np.float32)),
        torch.from_numpy(np.stack(labels).astype(np.int64)),
        ids,
        index,
    )
