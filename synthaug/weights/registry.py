"""The weights registry: shipped model cards, user folders, lookup by name or path, a per-process cache.

Shipped weights live in ``synthaug/weights/files/<name>.safetensors`` with their card in
``synthaug/weights/cards/<name>.json`` (the card holds the file's sha256). Extra folders with the
same layout can be added through the ``SYNTHAUG_WEIGHTS_PATH`` environment variable
(``os.pathsep``-separated). Nothing is ever downloaded.

Every load is verified (:mod:`synthaug.weights.store`): the file against its card's sha256 and the tensors
against the content hash embedded in the file. A card without a sha256 is refused unless the caller opts out
(``allow_unverified=True`` or ``SYNTHAUG_ALLOW_UNVERIFIED_WEIGHTS=1``). A malformed card in any search folder is
reported once per process (a :class:`MalformedCardWarning` naming its path and the problem) and skipped: other
weights keep working, and asking for the broken entry by name raises an error naming the file.

Transforms hold only a weights *name*; the network is resolved lazily through :func:`load` whose
per-process cache keys on (sha256, device, dtype). That keeps frozen networks out of objects that
MONAI's ``CacheDataset`` deep-copies, and loads each generator once per process and device.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from synthaug._validate import closest
from synthaug.errors import ValidationError, WeightsError
from synthaug.weights.card import FAMILIES, ModelCard
from synthaug.weights.store import (
    ALLOW_UNVERIFIED_ENV,
    Integrity,
    UnverifiedWeightsWarning,
    build_verified,
    inference_spec,
    inspect_weights,
    load_network,
    read_card,
    read_verified,
    unverified_allowed,
    warn_unverified,
    write_state,
)

__all__ = [
    "builtin_dir",
    "search_dirs",
    "list_weights",
    "get_card",
    "resolve",
    "load",
    "clear_cache",
    "card_of",
    "check_family",
    "publish",
    "reseal",
    "verify",
    "malformed_cards",
    "MalformedCard",
    "MalformedCardWarning",
    "Published",
    "Verification",
]

_CACHE: dict[tuple[str, str, str], tuple[nn.Module, ModelCard]] = {}
_LOCK = threading.Lock()
_WARNED_MALFORMED: set[tuple[str, str]] = set()


class MalformedCardWarning(UserWarning):
    """A model card in a registry folder could not be read; it was skipped."""


@dataclass(frozen=True)
class MalformedCard:
    """A card file that could not be read: its path, the problem, and the names it may have been meant to serve."""

    path: Path
    problem: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class _Catalogue:
    entries: dict[str, tuple[ModelCard, Path, Path]] = field(default_factory=dict)  # name -> card, file, card file
    malformed: tuple[MalformedCard, ...] = ()


def builtin_dir() -> Path:
    return Path(__file__).resolve().parent


def search_dirs() -> list[Path]:
    dirs = [builtin_dir()]
    extra = os.environ.get("SYNTHAUG_WEIGHTS_PATH", "")
    dirs += [Path(p) for p in extra.split(os.pathsep) if p]
    return dirs


_CARDS_CACHE: dict[tuple, _Catalogue] = {}


def _cards() -> _Catalogue:
    """Every card of the search folders, parsed once per folder state (a card added or removed changes the
    folder's mtime; after editing a card in place call :func:`clear_cache`). Transforms call this per sample."""
    key = tuple(
        (str(root), (root / "cards").stat().st_mtime_ns if (root / "cards").is_dir() else None) for root in search_dirs()
    )
    cached = _CARDS_CACHE.get(key)
    if cached is None:
        cached = _CARDS_CACHE[key] = _read_cards()
    for bad in cached.malformed:
        if (str(bad.path), bad.problem) not in _WARNED_MALFORMED:
            _WARNED_MALFORMED.add((str(bad.path), bad.problem))
            warnings.warn(f"skipped malformed model card {str(bad.path)!r}: {bad.problem}", MalformedCardWarning,
                          stacklevel=3)
    return cached


def _names_in(card_path: Path) -> tuple[str, ...]:
    """The names a card file was probably meant to serve: its stem and, if readable, its ``name`` field."""
    names = [card_path.stem]
    try:
        data = json.loads(card_path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            names.append(data["name"])
    except (OSError, ValueError):
        pass
    return tuple(dict.fromkeys(names))


def _read_cards() -> _Catalogue:
    found: dict[str, tuple[ModelCard, Path, Path]] = {}
    malformed: list[MalformedCard] = []
    for root in search_dirs():
        for card_path in sorted((root / "cards").glob("*.json")):
            try:
                card = ModelCard.from_json(card_path.read_text(encoding="utf-8"))
                if not card.file or Path(card.file).name != card.file:
                    raise WeightsError(f"its file {card.file!r} must be the plain name of a file in "
                                       f"{str(root / 'files')!r}.")
            except (WeightsError, OSError, UnicodeDecodeError) as exc:
                malformed.append(MalformedCard(card_path, str(exc), _names_in(card_path)))
                continue
            found.setdefault(card.name, (card, root / "files" / card.file, card_path))
    malformed = [m for m in malformed if not any(n in found for n in m.names)]  # a valid card of that name wins
    return _Catalogue(found, tuple(malformed))


def malformed_cards() -> tuple[MalformedCard, ...]:
    """The card files of the search folders that could not be read (each also warned about once per process)."""
    return _cards().malformed


def list_weights() -> list[ModelCard]:
    """Cards of every known weights entry (shipped first, then ``SYNTHAUG_WEIGHTS_PATH``); malformed cards are
    skipped with a warning."""
    return [card for card, _, _ in _cards().entries.values()]


def _entry(name: str) -> tuple[ModelCard, Path, Path]:
    cat = _cards()
    if name in cat.entries:
        return cat.entries[name]
    for bad in cat.malformed:
        if name in bad.names:
            raise WeightsError(f"weights {name!r}: its model card {str(bad.path)!r} is malformed and was skipped: "
                               f"{bad.problem} Fix or remove that file.")
    raise WeightsError(
        f"no weights named {name!r}; known: {sorted(cat.entries)}.{closest(name, cat.entries)} "
        "Pass a path to a .safetensors file, or add its folder to SYNTHAUG_WEIGHTS_PATH."
    )


def get_card(name: str) -> ModelCard:
    return _entry(name)[0]


def _checked_sha(card: ModelCard, card_path: Path, file_path: Path, allow_unverified: bool | None) -> str | None:
    """The card's sha256, or None after an explicit opt-out when the card has none (refused otherwise)."""
    if card.sha256:
        return card.sha256
    if not unverified_allowed(allow_unverified):
        raise WeightsError(
            f"model card {str(card_path)!r} of weights {card.name!r} has no sha256, so its file {str(file_path)!r} "
            f"cannot be checked. Record the file's sha256 in the card (`synthaug weights reseal {card.name}` does it "
            f"after checking the tensor hash), or opt out explicitly with {ALLOW_UNVERIFIED_ENV}=1 in the environment "
            "or allow_unverified=True."
        )
    warn_unverified(f"weights {card.name!r}: card {str(card_path)!r} has no sha256, so the file is not checked "
                    "against a checksum (its embedded tensor hash still is)")
    return None


def _locate(name_or_path: str | Path) -> tuple[Path, ModelCard | None, Path | None]:
    """(weights file, the card that describes it or None, that card's file or None) for a name or a path.

    For a path, the card is the one beside it (``<stem>.json``, as training runs write it) or the registry
    entry the file belongs to; None when there is neither."""
    p = Path(name_or_path)
    if p.suffix == ".safetensors" or p.is_file():
        if not p.is_file():
            raise WeightsError(f"weights file {str(p)!r} does not exist.")
        sidecar = p.with_suffix(".json")
        if sidecar.is_file():
            return p, ModelCard.read(sidecar), sidecar
        for card, path, card_path in _cards().entries.values():
            if path.is_file() and path.resolve() == p.resolve():
                return p, card, card_path
        return p, None, None
    card, path, card_path = _entry(str(name_or_path))
    return path, card, card_path


def resolve(name_or_path: str | Path, *, allow_unverified: bool | None = None) -> tuple[Path, str | None]:
    """(file path, expected sha256 or None) for a registry name or a path to a weights file.

    The expected sha256 comes from the card that describes the file (:func:`_locate`); None when no card does
    (the embedded tensor hash is then the only check). A card without a sha256 is refused unless the caller
    opts out (``allow_unverified``).
    """
    path, card, card_path = _locate(name_or_path)
    if card is None or card_path is None:
        return path, None
    return path, _checked_sha(card, card_path, path, allow_unverified)


def load(
    name_or_path: str | Path,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    allow_unverified: bool | None = None,
    family: str | None = None,
) -> tuple[nn.Module, ModelCard]:
    """The frozen network and its card, loaded (and verified) once per (weights, device, dtype) in this process.

    ``allow_unverified`` (default: the ``SYNTHAUG_ALLOW_UNVERIFIED_WEIGHTS`` environment variable) accepts a card
    without a sha256 or a file with nothing to check; a mismatching checksum or tensor hash is always refused.
    ``family`` refuses weights of another model family (checked on the card, before any tensor is read).
    """
    if family is not None:
        card_of(name_or_path, family=family)
    path, expected = resolve(name_or_path, allow_unverified=allow_unverified)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    key_sha = expected or f"path:{path.resolve()}:{path.stat().st_mtime_ns}"
    key = (key_sha, str(dev), str(dtype))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = load_network(path, expected_sha256=expected, allow_unverified=allow_unverified, device=dev,
                                       dtype=dtype)
        return _CACHE[key]


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()
        _CARDS_CACHE.clear()


def card_of(name_or_path: str | Path, *, family: str | None = None) -> ModelCard:
    """The card for a name or a file, without loading tensors (nothing is verified: see :func:`load`).

    ``family`` (one of :data:`~synthaug.weights.card.FAMILIES`) refuses a card of another family with a
    :class:`~synthaug.errors.WeightsError` that lists the registered weights of the wanted family.
    """
    path, described, _ = _locate(name_or_path)
    card = read_card(path)
    card = card.replace(sha256=(described.sha256 if described is not None else "") or card.sha256)
    if family is not None:
        check_family(card, family, name_or_path)
    return card


def check_family(card: ModelCard, family: str, name_or_path: str | Path | None = None) -> None:
    """Raise :class:`~synthaug.errors.WeightsError` unless ``card`` is a ``family`` model (the message names the
    weights, their family, and the registered weights of the wanted family)."""
    if family not in FAMILIES:
        raise ValidationError(f"family={family!r} is not one of {FAMILIES}.")
    if card.family == family:
        return
    known = sorted(c.name for c in list_weights() if c.family == family)
    label = str(name_or_path) if name_or_path is not None else card.name
    raise WeightsError(
        f"weights {label!r} are a {card.family!r} model, not a {family!r} one. Registered {family!r} weights: "
        f"{', '.join(known) or 'none'} (`synthaug weights list` shows every entry with its family)."
    )


@dataclass(frozen=True)
class Published:
    """The result of :func:`publish`: the stored card, its weights file, and whether a tensor hash was added
    (the source carried none and the caller vouched for it with ``accept_unhashed``)."""

    card: ModelCard
    path: Path
    hash_added: bool


def publish(
    source: str | Path,
    *,
    name: str,
    dest: Path | None = None,
    metrics: dict | None = None,
    notes: str | None = None,
    accept_unhashed: bool = False,
    allow_unverified: bool | None = None,
) -> Published:
    """Copy a trained weights file into a registry folder under ``name`` (card renamed, metrics attached).

    The source is verified first (its tensor hash, and its card's sha256 when a card sits beside it): a file
    whose tensors do not match the hash embedded at save time is refused. A file with no embedded hash (written
    by an older synthaug) is published only with ``accept_unhashed=True``; the published copy then carries a
    hash computed now (:attr:`Published.hash_added`). Tensors are copied byte for byte. ``dest`` defaults to
    the shipped folder (``synthaug/weights``). Refuses to overwrite an entry.
    """
    path, expected = resolve(Path(source), allow_unverified=allow_unverified)
    hash_added = not read_card(path).tensor_sha256
    if hash_added and not accept_unhashed:
        raise WeightsError(
            f"weights file {str(path)!r} carries no tensor content hash (written by a synthaug before hashes were "
            "embedded), so nothing proves its tensors are the ones trained. Publish it only if you trust it: "
            "`synthaug weights publish ... --accept-unhashed` (accept_unhashed=True) embeds a hash computed now."
        )
    with warnings.catch_warnings():  # accept_unhashed is the caller's explicit word; Published.hash_added reports it
        if accept_unhashed:
            warnings.simplefilter("ignore", UnverifiedWeightsWarning)
        card, state, _ = read_verified(path, expected_sha256=expected,
                                       allow_unverified=True if accept_unhashed else allow_unverified)
    network = build_verified(card, state, path)
    root = Path(dest) if dest is not None else builtin_dir()
    card_path = root / "cards" / f"{name}.json"
    file_path = root / "files" / f"{name}.safetensors"
    if card_path.exists() or file_path.exists():
        raise WeightsError(f"weights {name!r} already exist in {root}; choose another name or remove them first.")
    changes: dict = {"name": name}
    if metrics is not None:
        changes["metrics"] = metrics
    if notes is not None:
        changes["notes"] = notes
    if card.inference.divisor == 0:
        changes["inference"] = inference_spec(network, card.inference)
    stored = write_state(state, card.replace(**changes), file_path)
    card_path.parent.mkdir(parents=True, exist_ok=True)
    card_path.write_text(stored.to_json() + "\n")
    clear_cache()
    return Published(stored, file_path, hash_added)


def reseal(name: str, *, allow_unverified: bool | None = None) -> ModelCard:
    """Re-embed a registry entry's card (``cards/<name>.json``, e.g. after editing its documentation) into its
    weights file and record the new sha256 in the card.

    The file is verified as it is first (against the card's sha256 and its embedded tensor hash); the card must
    still build the network from the tensors; the tensors are rewritten byte for byte (their content hash is
    checked before and after), and the card is stored in the current format with its tensor hash and the size
    divisor filled in.
    """
    card, file_path, card_path = _entry(name)
    expected = _checked_sha(card, card_path, file_path, allow_unverified)
    _, state, before = read_verified(file_path, expected_sha256=expected, allow_unverified=allow_unverified)
    network = build_verified(card, state, file_path)
    card = card.replace(inference=inference_spec(network, card.inference))
    stored = write_state(state, card, file_path)
    _, _, after = inspect_weights(file_path, expected_sha256=stored.sha256)
    if after.tensor_sha256 != before.tensor_sha256 or after.problems():
        raise WeightsError(f"resealing {str(file_path)!r} changed its tensors ({before.tensor_sha256} -> "
                           f"{after.tensor_sha256}); restore the file from version control.")
    card_path.write_text(stored.to_json() + "\n")
    clear_cache()
    return stored


@dataclass(frozen=True)
class Verification:
    """The outcome of :func:`verify` for one weights entry: both checks, the rebuild, and every problem found."""

    name: str
    path: Path
    integrity: Integrity | None
    parameters: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _verify_entry(name: str, card: ModelCard, path: Path, card_path: Path | None) -> Verification:
    problems: list[str] = []
    if card_path is not None and not card.sha256:
        problems.append(f"model card {str(card_path)!r} has no sha256: the file cannot be checked against it "
                        f"(`synthaug weights reseal {name}` records it).")
    try:
        embedded, state, integrity = inspect_weights(path, expected_sha256=card.sha256 or None)
    except WeightsError as exc:
        return Verification(name, path, None, 0, (*problems, str(exc)))
    problems += [p for p in integrity.problems() if "cannot be verified" not in p]
    if not integrity.embedded_tensor_sha256:
        problems.append(f"weights file {str(path)!r} carries no embedded tensor content hash (`synthaug weights reseal "
                        f"{name}` or `publish --accept-unhashed` adds one).")
    if card.tensor_sha256 and integrity.embedded_tensor_sha256 and card.tensor_sha256 != integrity.embedded_tensor_sha256:
        problems.append(f"model card tensor_sha256 {card.tensor_sha256} differs from the hash embedded in "
                        f"{str(path)!r} ({integrity.embedded_tensor_sha256}).")
    parameters = 0
    try:
        network = build_verified(embedded, state, path)
        parameters = sum(p.numel() for p in network.parameters())
    except WeightsError as exc:
        problems.append(str(exc))
    return Verification(name, path, integrity, parameters, tuple(problems))


def verify(name_or_path: str | Path | None = None) -> list[Verification]:
    """Check the file sha256 and the embedded tensor hash of one entry (name or path) or of every entry, and
    rebuild each network; malformed cards are reported as failed entries. Nothing is cached or raised for a
    failed check: each problem is listed."""
    if name_or_path is None:
        cat = _cards()
        out = [_verify_entry(name, card, path, card_path) for name, (card, path, card_path) in cat.entries.items()]
        out += [Verification(bad.names[-1], bad.path, None, 0, (f"malformed model card {str(bad.path)!r}: {bad.problem}",))
                for bad in cat.malformed]
        return out
    path, card, card_path = _locate(name_or_path)
    if card is None:
        card = read_card(path)
    return [_verify_entry(card.name, card, path, card_path)]
