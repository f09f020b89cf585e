"""PNG preview grids (label maps in colour, images in grey) with Pillow only."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

__all__ = ["label_colours", "to_rgb", "write_grid"]


def label_colours(n: int) -> np.ndarray:
    """A fixed, distinguishable colour table (n, 3) uint8; label 0 is black."""
    rng = np.random.default_rng(12345)
    table = rng.integers(60, 256, size=(max(n, 1), 3), dtype=np.int64).astype(np.uint8)
    table[0] = 0
    return table


def to_rgb(panel: torch.Tensor, *, is_label: bool, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """(H, W) tensor -> (H, W, 3) uint8."""
    a = panel.detach().to("cpu").float().numpy()
    if is_label:
        lab = a.astype(np.int64)
        return label_colours(int(lab.max()) + 1)[lab]
    lo, hi = value_range
    g = np.clip((a - lo) / (hi - lo), 0, 1)
    g = (g * 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)


def write_grid(
    panels: Sequence[torch.Tensor],
    path: Path,
    *,
    max_rows: int = 4,
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> Path:
    """Write a grid: one column per panel, one row per sample (first ``max_rows``).

    Each panel is (N, H, W) integer (a label map, drawn in colour) or (N, 1, H, W) float (grey).
    2D slices only: pass the middle slice of 3D data.
    """
    from PIL import Image

    cols = []
    for p in panels:
        is_label = not p.is_floating_point()
        if p.ndim == 4:
            p = p[:, 0]
        # Arrays are (x, y) in RAS+: show anterior up (rot90), patient right on the image's right.
        rows = [
            np.ascontiguousarray(np.rot90(to_rgb(p[i], is_label=is_label, value_range=value_range)))
            for i in range(min(max_rows, p.shape[0]))
        ]
        cols.append(np.concatenate(rows, axis=0))
    grid = np.concatenate(cols, axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    Image.fromarray(grid).save(tmp)
    tmp.replace(path)
    return path
