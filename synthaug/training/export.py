"""The one export path of every training driver: weights + model card, written by rank 0 only.

:func:`export_weights` fills the card's typed ``inference`` section from the network's declared interface
(:class:`~synthaug.networks.interface.GeneratorModule`: size divisor, latent size, per-voxel noise channels),
writes the safetensors file (card embedded, sha256 recorded) and the card JSON beside it. Under ``torchrun``
only rank 0 writes; the other ranks get the card back without a file.
"""

from __future__ import annotations

from pathlib import Path

from synthaug.networks.interface import GeneratorModule
from synthaug.training.distributed import is_main
from synthaug.weights.card import ModelCard
from synthaug.weights.store import inference_spec, save_weights

__all__ = ["export_weights"]


def export_weights(network: GeneratorModule, card: ModelCard, out_dir: str | Path) -> tuple[ModelCard, Path]:
    """Write ``out_dir/<card.name>.safetensors`` and ``.json`` (rank 0 only); return the stored card and the path."""
    out = Path(out_dir)
    path = out / f"{card.name}.safetensors"
    card = card.replace(inference=inference_spec(network, card.inference))
    if is_main():  # under torchrun only rank 0 exports
        card = save_weights(network, card, path)
        (out / f"{card.name}.json").write_text(card.to_json())
    return card, path
