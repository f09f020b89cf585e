"""Fixtures shared by every test folder."""

import pytest
import torch

from synthaug.weights.registry import clear_cache
from tests.transforms.conftest import tiny_weights  # noqa: F401  (the tiny registry of untrained generators)


@pytest.fixture
def one_thread():
    """One intra-op torch thread for the test (the test machine's cores are shared: one thread is much faster
    than two contended ones); the process's weights cache is cleared after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
    clear_cache()
