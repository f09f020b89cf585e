"""Save and load network weights as safetensors with the model card embedded, verified on every load.

Never pickles: weights are plain tensors (safetensors); the card is JSON in the file's metadata and, for
registry weights, also a ``.json`` card in the registry's ``cards/`` folder (or beside the file) so it can be
listed without reading tensors.

Two checks protect a weights file:

- ``sha256`` of the whole file, held by the registry card (a file cannot hold its own checksum);
- ``tensor_sha256``, the content hash of the tensors (:func:`tensor_sha256`), written into the embedded card
  when the file is saved and recomputed on every load, by registry name or by path. It catches modified tensor
  bytes in a file that has no registry card.

A load with neither check available (a file written before tensor hashes were embedded, with no card giving
its sha256) is refused unless the caller opts out: ``allow_unverified=True`` or the environment variable
``SYNTHAUG_ALLOW_UNVERIFIED_WEIGHTS=1`` (:data:`ALLOW_UNVERIFIED_ENV`). A mismatching checksum or tensor hash is
always refused.

>>> import torch
>>> tensor_sha256({"w": torch.zeros(2)}) == tensor_sha256({"w": torch.zeros(2)})
True
>>> tensor_sha256({"w": torch.zeros(2)}) == tensor_sha256({"w": torch.zeros(2, dtype=torch.float64)})
False
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from synthaug.data.cache import sha256_file
from synthaug.errors import WeightsError
from synthaug.networks.interface import GeneratorModule
from synthaug.weights.architectures import build_network
from synthaug.weights.card import InferenceSpec, ModelCard, NoiseSpec

__all__ = [
    "save_weights",
    "write_state",
    "read_card",
    "read_verified",
    "load_network",
    "inspect_weights",
    "Integrity",
    "inference_spec",
    "sha256_file",
    "tensor_sha256",
    "unverified_allowed",
    "warn_unverified",
    "build_verified",
    "ALLOW_UNVERIFIED_ENV",
    "UnverifiedWeightsWarning",
]

_CARD_KEY = "synthaug_card"
#: Environment variable that opts out of the refusal of unverifiable weights (``1``/``true``/``yes``).
ALLOW_UNVERIFIED_ENV = "SYNTHAUG_ALLOW_UNVERIFIED_WEIGHTS"
#: Version tag hashed first, so a future change of the scheme cannot collide with this one.
_TENSOR_HASH_SCHEME = b"synthaug-tensor-sha256-v1\n"
_WARNED: set[str] = set()


class UnverifiedWeightsWarning(UserWarning):
    """Weights were loaded without a checksum or tensor hash because the caller opted out."""


def unverified_allowed(allow_unverified: bool | None = None) -> bool:
    """``allow_unverified`` if given, else whether :data:`ALLOW_UNVERIFIED_ENV` is set to 1/true/yes."""
    if allow_unverified is not None:
        return bool(allow_unverified)
    return os.environ.get(ALLOW_UNVERIFIED_ENV, "").strip().lower() in ("1", "true", "yes")


def _opt_out_hint() -> str:
    return f"opt out explicitly with {ALLOW_UNVERIFIED_ENV}=1 in the environment or allow_unverified=True"


def warn_unverified(message: str) -> None:
    """Warn once per process (per message) that a check was skipped because the caller opted out."""
    if message in _WARNED:
        return
    _WARNED.add(message)
    warnings.warn(f"{message} (opt-out: {ALLOW_UNVERIFIED_ENV} / allow_unverified).", UnverifiedWeightsWarning,
                  stacklevel=3)


def tensor_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """Content hash of a state dict: sha256 over every tensor's name, dtype, shape and raw bytes.

    Tensors are taken in sorted name order; each contributes one JSON line ``[name, dtype, shape]`` followed by
    its bytes in native (little-endian on every platform synthaug runs on, as safetensors stores them) order.
    The JSON line is self-delimiting and the shape fixes the byte count, so the encoding is unambiguous.
    Independent of device and memory layout; changes with any flipped bit, renamed key, dtype or shape.
    """
    digest = hashlib.sha256(_TENSOR_HASH_SCHEME)
    for name in sorted(state):
        t = state[name]
        if not isinstance(t, torch.Tensor):
            raise WeightsError(f"state entry {name!r} is a {type(t).__name__}, not a tensor.")
        t = t.detach().to("cpu").contiguous()
        header = [name, str(t.dtype).removeprefix("torch."), list(t.shape)]
        digest.update(json.dumps(header).encode() + b"\n")
        if t.numel():
            digest.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()


def write_state(state: Mapping[str, torch.Tensor], card: ModelCard, path: Path) -> ModelCard:
    """Write ``state`` with ``card`` embedded (tensor hash filled in) to ``path`` atomically.

    Returns the card with ``file``, ``sha256`` (of the written file) and ``tensor_sha256`` set. The tensors are
    written exactly as given: reading them back gives the same bytes and the same :func:`tensor_sha256`.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    stored = card.replace(file=path.name, sha256="", tensor_sha256=tensor_sha256(tensors))
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata={_CARD_KEY: stored.to_json()})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    os.chmod(path, 0o644)
    return stored.replace(sha256=sha256_file(path))


def save_weights(module: nn.Module, card: ModelCard, path: Path) -> ModelCard:
    """Write ``module``'s state dict and ``card`` to ``path`` atomically; return the card with file + hashes."""
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
    return write_state(state, card, path)


def read_card(path: Path) -> ModelCard:
    """The card embedded in a safetensors weights file (header only; no tensors read)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist.")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise WeightsError(
            f"weights file {str(path)!r} is not a readable safetensors file ({exc}); it may be truncated or "
            "corrupt: restore it from the synthaug package or re-export it."
        ) from exc
    if _CARD_KEY not in meta:
        raise WeightsError(f"weights file {str(path)!r} carries no synthaug model card; it was not written by synthaug.")
    try:
        return ModelCard.from_json(meta[_CARD_KEY])
    except WeightsError as exc:
        raise WeightsError(f"weights file {str(path)!r}: its embedded {exc}") from exc


@dataclass(frozen=True)
class Integrity:
    """What the two checks found for one weights file.

    Attributes:
        path: the file.
        sha256: its sha256 (computed).
        expected_sha256: the sha256 a model card gives for it ("" when no card does).
        tensor_sha256: the content hash of its tensors (computed, :func:`tensor_sha256`).
        embedded_tensor_sha256: the hash written into the file when it was saved ("" for files written before).
    """

    path: Path
    sha256: str
    expected_sha256: str
    tensor_sha256: str
    embedded_tensor_sha256: str

    @property
    def file_ok(self) -> bool | None:
        """True/False: the file matches/differs from its card's sha256; None: no card gives one."""
        return (self.sha256 == self.expected_sha256) if self.expected_sha256 else None

    @property
    def tensors_ok(self) -> bool | None:
        """True/False: the tensors match/differ from the embedded hash; None: the file carries none."""
        return (self.tensor_sha256 == self.embedded_tensor_sha256) if self.embedded_tensor_sha256 else None

    def problems(self) -> tuple[str, ...]:
        """Every failed or missing check, each a sentence naming the file and the fix."""
        p = str(self.path)
        out = []
        if self.file_ok is False:
            out.append(f"weights file {p!r} is corrupt or was modified: sha256 {self.sha256} does not match the model "
                       f"card's {self.expected_sha256}. Reinstall synthaug (or re-export the weights).")
        if self.tensors_ok is False:
            out.append(f"weights file {p!r}: its tensors were modified or corrupted: their content hash "
                       f"{self.tensor_sha256} does not match the hash {self.embedded_tensor_sha256} written into the "
                       "file when it was saved. Restore the file (reinstall synthaug, or copy it again from its "
                       "training run); never use it as it is.")
        if self.file_ok is None and self.tensors_ok is None:
            out.append(f"weights file {p!r} cannot be verified: it carries no tensor content hash (written by a synthaug "
                       "before hashes were embedded) and no model card gives its sha256. If you trust it, re-save it "
                       f"with `synthaug weights publish {p} --name NAME --accept-unhashed`, or {_opt_out_hint()}.")
        return tuple(out)


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:
        raise WeightsError(f"weights file {str(path)!r} could not be read ({exc}); it may be corrupt.") from exc


def inspect_weights(
    path: Path, *, expected_sha256: str | None = None
) -> tuple[ModelCard, dict[str, torch.Tensor], Integrity]:
    """The embedded card, the tensors and both checks of ``path``, without judging them (see :func:`read_verified`)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} is missing; reinstall synthaug or restore the file.")
    actual = sha256_file(path)
    card = read_card(path)
    state = _load_state(path)
    integrity = Integrity(path, actual, expected_sha256 or "", tensor_sha256(state), card.tensor_sha256)
    return card, state, integrity


def read_verified(
    path: Path, *, expected_sha256: str | None = None, allow_unverified: bool | None = None
) -> tuple[ModelCard, dict[str, torch.Tensor], Integrity]:
    """The embedded card and the tensors of ``path`` after both checks (see the module docstring).

    Raises:
        WeightsError: the file differs from ``expected_sha256``; its tensors differ from the hash embedded at
            save time; or nothing can be checked and the caller did not opt out (:func:`unverified_allowed`).
    """
    path = Path(path)
    if expected_sha256 and not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} is missing; reinstall synthaug or restore the file.")
    card, state, integrity = inspect_weights(path, expected_sha256=expected_sha256)
    problems = integrity.problems()
    if problems and integrity.file_ok is not False and integrity.tensors_ok is not False:
        if not unverified_allowed(allow_unverified):  # only "cannot be verified": the caller may opt out
            raise WeightsError(problems[0])
        warn_unverified(f"weights file {str(path)!r} is used UNVERIFIED: it has no tensor hash and no card gives its "
                        "sha256")
    elif problems:
        raise WeightsError(problems[0])
    return card, state, integrity


def build_verified(card: ModelCard, state: Mapping[str, torch.Tensor], path: Path) -> nn.Module:
    """The card's network with ``state`` loaded strictly, in eval mode, gradients off."""
    network = build_network(card.architecture, card.arguments)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(
            f"weights file {str(path)!r} does not match architecture {card.architecture!r} with arguments "
            f"{card.arguments}: {exc}"
        ) from exc
    return network.eval().requires_grad_(False)


def load_network(
    path: Path,
    *,
    expected_sha256: str | None = None,
    allow_unverified: bool | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[nn.Module, ModelCard]:
    """Build the network from the file's card and load its tensors (both checks first, strict keys).

    ``expected_sha256`` is the file checksum from a model card (the registry passes it); the tensor hash embedded
    in the file is checked in every case. The returned module is in eval mode with gradients disabled: a frozen
    generator.
    """
    path = Path(path)
    card, state, _ = read_verified(path, expected_sha256=expected_sha256, allow_unverified=allow_unverified)
    network = build_verified(card, state, path)
    if device is not None or dtype is not None:
        network.to(device=device, dtype=dtype)
    card = card.replace(sha256=expected_sha256 or card.sha256)
    if card.inference.divisor == 0:  # not written by the export (an older card): the network declares it
        card = card.replace(inference=inference_spec(network, card.inference))
    return network, card


def inference_spec(network: nn.Module, base: InferenceSpec | None = None) -> InferenceSpec:
    """``base`` (canvas, patches, blending) completed with what the network declares about itself
    (:class:`~synthaug.networks.interface.GeneratorModule`: size divisor, latent size, voxel-noise channels)."""
    if not isinstance(network, GeneratorModule):
        raise WeightsError(f"{type(network).__name__} is not a synthaug GeneratorModule; it cannot be exported as weights.")
    base = base or InferenceSpec()
    noise = NoiseSpec(z_dim=int(network.z_dim), pixel_channels=int(network.noise_channels))
    return dataclasses.replace(base, divisor=int(network.divisor), noise=noise)
