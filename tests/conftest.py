"""Fixtures shared by every test folder."""

from tests.transforms.conftest import tiny_weights  # noqa: F401  (the tiny registry of untrained generators)
