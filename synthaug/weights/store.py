"""Save and load network weights as safetensors with the model card embedded, sha256-verified.

Never pickles: weights are plain tensors (safetensors); the card is JSON in the file's metadata
and, for shipped weights, also a ``.json`` next to the registry so it can be listed without
reading tensors.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
import torch.nn as nn

from synthaug.data.cache import sha256_file
from synthaug.errors import WeightsError
from synthaug.networks.interface import GeneratorModule
from synthaug.weights.architectures import build_network
from synthaug.weights.card import InferenceSpec, ModelCard, NoiseSpec

__all__ = ["save_weights", "read_card", "load_network", "inference_spec", "sha256_file"]

_CARD_KEY = "synthaug_card"


def save_weights(module: nn.Module, card: ModelCard, path: Path) -> ModelCard:
    """Write ``module``'s state dict and ``card`` to ``path`` atomically; return the card with file + sha256."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
    stored = card.replace(file=path.name, sha256="")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file(state, str(tmp), metadata={_CARD_KEY: stored.to_json()})
    os.replace(tmp, path)
    os.chmod(path, 0o644)
    return stored.replace(sha256=sha256_file(path))


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
    return ModelCard.from_json(meta[_CARD_KEY])


def load_network(
    path: Path,
    *,
    expected_sha256: str | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[nn.Module, ModelCard]:
    """Build the network from the file's card and load its tensors (checksum first, strict keys).

    The returned module is in eval mode with gradients disabled: a frozen generator.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if expected_sha256:
        actual = sha256_file(path) if path.is_file() else None
        if actual is None:
            raise WeightsError(f"weights file {str(path)!r} is missing; reinstall synthaug or restore the file.")
        if actual != expected_sha256:
            raise WeightsError(
                f"weights file {str(path)!r} is corrupt or was modified: sha256 {actual} does not match the model "
                f"card's {expected_sha256}. Reinstall synthaug (or re-export the weights)."
            )
    card = read_card(path)
    network = build_network(card.architecture, card.arguments)
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:
        raise WeightsError(f"weights file {str(path)!r} could not be read ({exc}); it may be corrupt.") from exc
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(
            f"weights file {str(path)!r} does not match architecture {card.architecture!r} with arguments "
            f"{card.arguments}: {exc}"
        ) from exc
    network.eval().requires_grad_(False)
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
