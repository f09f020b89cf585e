"""Simulated acquisition (blur, bias field, coarser slices): off means untouched, on stays in range, replays,
and a batch gives what per-sample calls give."""

from __future__ import annotations

import pytest
import torch

from synthaug.errors import ValidationError
from synthaug.transforms.acquisition import AcquisitionOptions, simulate_acquisition


def _volume(b: int = 3, shape: tuple[int, ...] = (12, 16, 16)) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(b, 1, *shape, generator=g) * 2 - 1
    x[..., : shape[-1] // 2] += 0.5  # an edge for the blur and the resolution to act on
    return x


def test_off_returns_the_input_itself():
    x = _volume()
    assert simulate_acquisition(x, [0, 1, 2], AcquisitionOptions()) is x


@pytest.mark.parametrize("shape", [(12, 16, 16), (20, 24)])
def test_on_changes_each_sample_within_its_own_range(shape):
    x = _volume(shape=shape)
    y = simulate_acquisition(x, [0, 1, 2], AcquisitionOptions(acquisition_prob=1.0))
    assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(y).all()
    for i in range(3):
        assert not torch.equal(y[i], x[i])
        assert y[i].min() >= x[i].min() - 1e-5 and y[i].max() <= x[i].max() + 1e-5


def test_replays_and_a_batch_equals_per_sample_calls():
    x = _volume()
    o = AcquisitionOptions(acquisition_prob=0.5, blur_max=1.5, bias_max=0.5, resolution_max=3.0)
    seeds = [5, 6, 7]
    batch = simulate_acquisition(x, seeds, o)
    assert torch.equal(batch, simulate_acquisition(x, seeds, o))
    singles = torch.cat([simulate_acquisition(x[i : i + 1], [s], o) for i, s in enumerate(seeds)])
    assert torch.allclose(batch, singles, atol=1e-6)


def test_probability_selects_whole_volumes():
    x = _volume(b=16, shape=(8, 12, 12))
    y = simulate_acquisition(x, list(range(16)), AcquisitionOptions(acquisition_prob=0.5))
    changed = [not torch.equal(y[i], x[i]) for i in range(16)]
    assert 0 < sum(changed) < 16  # some volumes drawn, some untouched (bit for bit)


def test_each_step_can_be_switched_off():
    x = _volume(b=1)
    only_blur = AcquisitionOptions(acquisition_prob=1.0, bias_max=0.0, resolution_max=1.0)
    nothing = AcquisitionOptions(acquisition_prob=1.0, blur_max=0.0, bias_max=0.0, resolution_max=1.0)
    assert torch.allclose(simulate_acquisition(x, [3], nothing), x)
    blurred = simulate_acquisition(x, [3], only_blur)
    assert blurred.diff(dim=-1).abs().mean() < x.diff(dim=-1).abs().mean()


@pytest.mark.parametrize("bad", [{"acquisition_prob": 1.5}, {"blur_max": -1.0}, {"resolution_max": 0.5},
                                 {"bias_max": "strong"}])
def test_bad_options_are_refused_by_name(bad):
    with pytest.raises(ValidationError, match=next(iter(bad))):
        AcquisitionOptions(**bad)


def test_wrong_shapes_are_refused():
    with pytest.raises(ValidationError, match="B, 1"):
        simulate_acquisition(torch.zeros(2, 2, 8, 8), [0, 1], AcquisitionOptions(acquisition_prob=1.0))
    with pytest.raises(ValidationError, match="one entry per sample"):
        simulate_acquisition(torch.zeros(2, 1, 8, 8), [0], AcquisitionOptions(acquisition_prob=1.0))
