"""Typed weight records (model cards), safe checksum-verified loading, and the registry."""

from synthaug.weights.card import ModelCard
from synthaug.weights.registry import card_of, clear_cache, get_card, list_weights, load
from synthaug.weights.store import load_network, read_card, save_weights, sha256_file

__all__ = [
    "ModelCard",
    "card_of",
    "clear_cache",
    "get_card",
    "list_weights",
    "load",
    "load_network",
    "read_card",
    "save_weights",
    "sha256_file",
]
