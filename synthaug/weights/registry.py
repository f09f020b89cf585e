"""The weights registry: shipped model cards, user folders, lookup by name or path, a per-process cache.

Shipped weights live in ``synthaug/weights/files/<name>.safetensors`` with their card in
``synthaug/weights/cards/<name>.json`` (the card holds the file's sha256). Extra folders with the
same layout can be added through the ``SYNTHAUG_WEIGHTS_PATH`` environment variable
(``os.pathsep``-separated). Nothing is ever downloaded.

Transforms hold only a weights *name*; the network is resolved lazily through :func:`load` whose
per-process cache keys on (sha256, device, dtype). That keeps frozen networks out of objects that
MONAI's ``CacheDataset`` deep-copies, and loads each generator once per process and device.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import torch
import torch.nn as nn

from synthaug._validate import closest
from synthaug.errors import WeightsError
from synthaug.weights.card import ModelCard
from synthaug.weights.store import load_network, read_card

__all__ = ["builtin_dir", "search_dirs", "list_weights", "get_card", "resolve", "load", "clear_cache", "card_of", "publish"]

_CACHE: dict[tuple[str, str, str], tuple[nn.Module, ModelCard]] = {}
_LOCK = threading.Lock()


def builtin_dir() -> Path:
    return Path(__file__).resolve().parent


def search_dirs() -> list[Path]:
    dirs = [builtin_dir()]
    extra = os.environ.get("SYNTHAUG_WEIGHTS_PATH", "")
    dirs += [Path(p) for p in extra.split(os.pathsep) if p]
    return dirs


_CARDS_CACHE: dict[tuple, dict[str, tuple[ModelCard, Path]]] = {}


def _cards() -> dict[str, tuple[ModelCard, Path]]:
    """Every card of the search folders, parsed once per folder state (a card added or removed changes the
    folder's mtime; after editing a card in place call :func:`clear_cache`). Transforms call this per sample."""
    key = tuple(
        (str(root), (root / "cards").stat().st_mtime_ns if (root / "cards").is_dir() else None) for root in search_dirs()
    )
    cached = _CARDS_CACHE.get(key)
    if cached is None:
        cached = _CARDS_CACHE[key] = _read_cards()
    return cached


def _read_cards() -> dict[str, tuple[ModelCard, Path]]:
    found: dict[str, tuple[ModelCard, Path]] = {}
    for root in search_dirs():
        for card_path in sorted((root / "cards").glob("*.json")):
            card = ModelCard.read(card_path)
            found.setdefault(card.name, (card, root / "files" / card.file))
    return found


def list_weights() -> list[ModelCard]:
    """Cards of every known weights entry (shipped first, then ``SYNTHAUG_WEIGHTS_PATH``)."""
    return [card for card, _ in _cards().values()]


def get_card(name: str) -> ModelCard:
    cards = _cards()
    if name not in cards:
        raise WeightsError(
            f"no weights named {name!r}; known: {sorted(cards)}.{closest(name, cards)} "
            "Pass a path to a .safetensors file, or add its folder to SYNTHAUG_WEIGHTS_PATH."
        )
    return cards[name][0]


def resolve(name_or_path: str | Path) -> tuple[Path, str | None]:
    """(file path, expected sha256 or None) for a registry name or a path to a weights file."""
    p = Path(name_or_path)
    if p.suffix == ".safetensors" or p.is_file():
        if not p.is_file():
            raise WeightsError(f"weights file {str(p)!r} does not exist.")
        sidecar = p.with_suffix(".json")
        expected = ModelCard.read(sidecar).sha256 if sidecar.is_file() else None
        return p, expected or None
    cards = _cards()
    if str(name_or_path) not in cards:
        get_card(str(name_or_path))  # raises the helpful error
    card, path = cards[str(name_or_path)]
    return path, card.sha256 or None


def load(
    name_or_path: str | Path,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[nn.Module, ModelCard]:
    """The frozen network and its card, loaded once per (weights, device, dtype) in this process."""
    path, expected = resolve(name_or_path)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    key_sha = expected or f"path:{path.resolve()}:{path.stat().st_mtime_ns}"
    key = (key_sha, str(dev), str(dtype))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = load_network(path, expected_sha256=expected, device=dev, dtype=dtype)
        return _CACHE[key]


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()
        _CARDS_CACHE.clear()


def card_of(name_or_path: str | Path) -> ModelCard:
    """The card for a name or a file, without loading tensors."""
    path, expected = resolve(name_or_path)
    card = read_card(path)
    return card.replace(sha256=expected or card.sha256)


def publish(
    source: str | Path, *, name: str, dest: Path | None = None, metrics: dict | None = None, notes: str | None = None
) -> ModelCard:
    """Copy a trained weights file into a registry folder under ``name`` (card renamed, metrics attached).

    ``dest`` defaults to the shipped folder (``synthaug/weights``). Refuses to overwrite an entry.
    """
    from synthaug.weights.store import save_weights

    net, card = load_network(Path(source))
    root = Path(dest) if dest is not None else builtin_dir()
    card_path = root / "cards" / f"{name}.json"
    file_path = root / "files" / f"{name}.safetensors"
    if card_path.exists() or file_path.exists():
        raise WeightsError(f"weights {name!r} already exist in {root}; choose another name or remove them first.")
    changes = {"name": name}
    if metrics is not None:
        changes["metrics"] = metrics
    if notes is not None:
        changes["notes"] = notes
    stored = save_weights(net, card.replace(**changes), file_path)
    card_path.parent.mkdir(parents=True, exist_ok=True)
    card_path.write_text(stored.to_json() + "\n")
    clear_cache()
    return stored
