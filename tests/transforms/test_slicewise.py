"""Tests of synthaug.transforms.slicewise: slice batching helpers and the device-dependent chunk."""

from __future__ import annotations

import torch

from synthaug.transforms.slicewise import default_chunk, from_slices, resolve_chunk, run_in_chunks, to_slices


def test_default_chunk_follows_the_device_and_an_explicit_chunk_wins():
    assert default_chunk("cpu") == 8 and default_chunk(torch.device("cpu")) == 8
    assert default_chunk(torch.device("cuda", 0)) == 32  # no GPU needed: only the device type is read
    assert default_chunk("meta") == 32
    assert resolve_chunk(None, "cpu") == 8 and resolve_chunk(3, "cpu") == 3 and resolve_chunk(5, "cuda") == 5


def test_run_in_chunks_covers_every_slice_once_in_order():
    calls = []

    def fn(part: slice) -> torch.Tensor:
        calls.append((part.start, part.stop))
        return torch.arange(part.start, part.stop)

    assert torch.equal(run_in_chunks(fn, 10, 4), torch.arange(10))
    assert calls == [(0, 4), (4, 8), (8, 10)]


def test_slices_round_trip_along_each_axis():
    x = torch.randn(2, 1, 5, 6, 7)
    for axis in (0, 1, 2):
        s = to_slices(x, axis)
        assert s.shape[0] == 2 * x.shape[2 + axis]
        assert torch.equal(from_slices(s, 2, axis, x.ndim), x)
