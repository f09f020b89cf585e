"""Typed weight records (model cards), safe verified loading (file checksum + tensor content hash), and the registry."""

from synthaug.weights.card import DataSource, ModelCard, UsageSpec
from synthaug.weights.registry import card_of, clear_cache, get_card, list_weights, load, verify
from synthaug.weights.store import (
    ALLOW_UNVERIFIED_ENV,
    load_network,
    read_card,
    save_weights,
    sha256_file,
    tensor_sha256,
)

__all__ = [
    "ALLOW_UNVERIFIED_ENV",
    "DataSource",
    "ModelCard",
    "UsageSpec",
    "card_of",
    "clear_cache",
    "get_card",
    "list_weights",
    "load",
    "load_network",
    "read_card",
    "save_weights",
    "sha256_file",
    "tensor_sha256",
    "verify",
]
