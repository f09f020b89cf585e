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
    titles: Sequence[Sequence[str]] | None = None,
) -> Path:
    """Write a grid: one column per panel, one row per sample (first ``max_rows``).

    Each panel is (N, H, W) integer (a label map, drawn in colour) or (N, 1, H, W) float (grey).
    2D slices only: pass the middle slice of 3D data. ``titles[row][column]`` (optional) captions each cell
    (a white band above it; long captions wrap).
    """
    from PIL import Image

    if titles is not None:
        return _write_captioned(panels, Path(path), max_rows=max_rows, value_range=value_range, titles=titles)

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


def _cell(p: torch.Tensor, i: int, value_range: tuple[float, float]) -> np.ndarray:
    is_label = not p.is_floating_point()
    q = p[:, 0] if p.ndim == 4 else p
    return np.ascontiguousarray(np.rot90(to_rgb(q[i], is_label=is_label, value_range=value_range)))


def _write_captioned(panels: Sequence[torch.Tensor], path: Path, *, max_rows: int, value_range: tuple[float, float],
                     titles: Sequence[Sequence[str]]) -> Path:
    import textwrap

    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    rows = min(max_rows, panels[0].shape[0])
    cells = [[_cell(p, i, value_range) for p in panels] for i in range(rows)]
    h = max(c.shape[0] for r in cells for c in r)
    w = max(max(c.shape[1] for r in cells for c in r), 160)
    chars = max(12, w // 6)
    wrapped = [[textwrap.fill(str(titles[i][j]) if j < len(titles[i]) else "", chars) for j in range(len(panels))]
               for i in range(rows)]
    band = 12 * max(1, max(t.count("\n") + 1 for r in wrapped for t in r)) + 4
    canvas = Image.new("RGB", (w * len(panels), (h + band) * rows), "white")
    draw = ImageDraw.Draw(canvas)
    for i in range(rows):
        for j in range(len(panels)):
            c = cells[i][j]
            x0, y0 = j * w, i * (h + band)
            draw.multiline_text((x0 + 2, y0 + 2), wrapped[i][j], fill="black", font=font, spacing=2)
            canvas.paste(Image.fromarray(c), (x0 + (w - c.shape[1]) // 2, y0 + band + (h - c.shape[0]) // 2))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    canvas.save(tmp)
    tmp.replace(path)
    return path
