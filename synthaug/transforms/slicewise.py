"""Run a 2D generator over every slice of 2D or 3D inputs, batched, padded to its size divisor."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["to_slices", "from_slices", "pad_to_multiple", "run_in_chunks", "default_chunk", "resolve_chunk"]

# Slices (or patches) per generator call when the caller does not say. On CPU, 128x128 chunks of 32 slices
# ran ~3x slower per slice than chunks of 8 (activations fall out of cache; benchmarks/results/speed.md);
# a GPU wants large batches to fill its cores.
DEFAULT_CHUNK = {"cpu": 8, "cuda": 32}


def to_slices(x: torch.Tensor, axis: int) -> torch.Tensor:
    """``(B, C, X, Y, Z)`` -> ``(B * n, C, a, b)`` slices along spatial ``axis`` (0, 1 or 2).

    2D input ``(B, C, X, Y)`` is returned unchanged.
    """
    if x.ndim == 4:
        return x
    moved = x.movedim(2 + axis, 1)  # (B, n, C, a, b)
    return moved.reshape(-1, *moved.shape[2:])


def from_slices(s: torch.Tensor, batch: int, axis: int, ndim: int) -> torch.Tensor:
    """Inverse of :func:`to_slices` for an input that had ``ndim`` dimensions."""
    if ndim == 4:
        return s
    n = s.shape[0] // batch
    return s.reshape(batch, n, *s.shape[1:]).movedim(1, 2 + axis)


def pad_to_multiple(
    x: torch.Tensor, multiple: int, value: float, *, minimum: tuple[int, int] = (0, 0)
) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Pad the last two dims of ``x`` symmetrically up to at least ``minimum``, then to multiples of ``multiple``.

    Generators trained on fixed-size slices (e.g. 128x128) render smaller slices best when padded
    to that size (instance normalisation and the learned context see the same canvas).
    """
    h, w = x.shape[-2:]
    th = max(h, minimum[0])
    tw = max(w, minimum[1])
    th += (-th) % multiple
    tw += (-tw) % multiple
    ph, pw = th - h, tw - w
    pads = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    if ph == 0 and pw == 0:
        return x, pads
    if x.is_floating_point():
        return F.pad(x, pads, value=value), pads
    return F.pad(x.float(), pads, value=value).to(x.dtype), pads


def crop_padding(x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    left, right, top, bottom = pads
    h, w = x.shape[-2:]
    return x[..., top : h - bottom, left : w - right]


def default_chunk(device: torch.device | str) -> int:
    """Slices per generator call for ``device`` (8 on CPU, 32 on CUDA and other accelerators)."""
    return DEFAULT_CHUNK["cpu"] if torch.device(device).type == "cpu" else DEFAULT_CHUNK["cuda"]


def resolve_chunk(chunk: int | None, device: torch.device | str) -> int:
    """``chunk`` if given, else :func:`default_chunk` of ``device``."""
    return int(chunk) if chunk is not None else default_chunk(device)


def run_in_chunks(fn: Callable[[slice], torch.Tensor], n: int, chunk: int) -> torch.Tensor:
    """``torch.cat([fn(slice(i, i + chunk)) for i in range(0, n, chunk)])`` (bounded memory)."""
    return torch.cat([fn(slice(i, min(i + chunk, n))) for i in range(0, n, chunk)])
