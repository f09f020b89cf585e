"""Helpers that damage or age weights files the way the issue-17 cases do."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch
from safetensors.torch import save_file

from synthaug.weights.card import ModelCard


def tensor_region_start(path: Path) -> int:
    """Byte offset of the first tensor byte of a safetensors file (8-byte header length, then the JSON header)."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
    return 8 + header_len


def flip_tensor_bytes(path: Path, *, offsets: tuple[int, ...] = (0, 101, 4099), mask: int = 0x40) -> None:
    """Flip bits of a few bytes inside the tensor region (the header, and so the embedded card, stays intact)."""
    data = bytearray(Path(path).read_bytes())
    start = tensor_region_start(path)
    for off in offsets:
        data[start + off % (len(data) - start)] ^= mask
    Path(path).write_bytes(bytes(data))


def write_legacy(state: dict[str, torch.Tensor], card: ModelCard, path: Path) -> None:
    """A weights file as synthaug wrote it before tensor hashes: a format-2 card without ``tensor_sha256``."""
    d = card.to_dict()
    for key in ("tensor_sha256", "usage", "training_data", "licence"):
        d.pop(key)
    d.update(format=2, sha256="", file=Path(path).name)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={"synthaug_card": json.dumps(d)})
