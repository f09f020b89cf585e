"""feature_maps placement and the 0..100 normalisation round trip."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from synthaug.errors import LabelError, ShapeError, ValidationError
from synthaug.features import (
    denormalise_features,
    feature_bounds,
    feature_maps,
    normalise_features,
    region_features,
)


@pytest.mark.parametrize("spatial", [(6, 5), (3, 4, 5)], ids=["2d", "3d"])
def test_each_value_only_inside_its_region(spatial):
    g = torch.Generator().manual_seed(0)
    n_labels, n_features, batch = 4, 2, 3
    labels = torch.randint(0, n_labels, (batch, *spatial), generator=g)
    values = torch.rand(batch, n_features, n_labels, generator=g) + 1.0  # never 0
    maps = feature_maps(values, labels, n_labels=n_labels)
    assert maps.shape == (batch, n_features, n_labels, *spatial)
    inside = torch.nn.functional.one_hot(labels, n_labels).movedim(-1, 1).bool()  # (B, N_L, *spatial)
    expected_inside = values.reshape(*values.shape, *([1] * len(spatial))).expand_as(maps)
    mask = inside.unsqueeze(1).expand_as(maps)
    assert torch.equal(maps[mask], expected_inside[mask])
    assert (maps[~mask] == 0).all()
    # summing over regions gives each voxel its own region's value
    gathered = torch.gather(values, 2, labels.reshape(batch, 1, -1).expand(-1, n_features, -1))
    assert torch.equal(maps.sum(2).reshape(batch, n_features, -1), gathered)


def test_maps_follow_values_dtype_accept_channel_labels_and_carry_gradients():
    labels = torch.tensor([[[0, 1], [2, 2]]])
    values = torch.arange(6, dtype=torch.float64).reshape(1, 2, 3).requires_grad_()
    maps = feature_maps(values, labels[:, None], n_labels=3)
    assert maps.dtype == torch.float64
    assert torch.equal(maps, feature_maps(values, labels, n_labels=3))
    maps.sum().backward()
    assert torch.equal(values.grad, torch.tensor([[[1.0, 1.0, 2.0], [1.0, 1.0, 2.0]]], dtype=torch.float64))


@pytest.mark.parametrize(
    "values_shape,labels,error,match",
    [
        ((1, 2, 4), torch.zeros(1, 3, 3, dtype=torch.long), ShapeError, "N_L=n_labels=3"),
        ((2, 2, 3), torch.zeros(1, 3, 3, dtype=torch.long), ShapeError, "B=1"),
        ((2, 3), torch.zeros(1, 3, 3, dtype=torch.long), ShapeError, r"\(B, N_F, N_L\)"),
        ((1, 2, 3), torch.full((1, 3, 3), 5), LabelError, r"\[5\].*n_labels=3"),
    ],
)
def test_feature_maps_errors(values_shape, labels, error, match):
    with pytest.raises(error, match=match):
        feature_maps(torch.zeros(values_shape), labels, n_labels=3)


def test_feature_maps_rejects_integer_values():
    with pytest.raises(ValidationError, match="floating-point"):
        feature_maps(
            torch.zeros(1, 1, 2, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long), n_labels=2
        )


def test_known_normalisation_points():
    names = ("mean", "std", "entropy", "gradient")
    raw = torch.tensor([[-1.0, 1.0, 0.0], [0.0, 1.0, 0.5], [0.0, 5.0, 2.5], [0.0, 1.0, 0.25]])
    out = normalise_features(raw, names, value_range=(-1.0, 1.0), bins=32)
    expected = torch.tensor([[0.0, 100.0, 50.0], [0.0, 100.0, 50.0], [0.0, 100.0, 50.0], [0.0, 100.0, 25.0]])
    torch.testing.assert_close(out, expected)
    out = normalise_features(torch.tensor([[300.0, -5.0]]), ("mean",), value_range=(0.0, 255.0), clip=True)
    torch.testing.assert_close(out, torch.tensor([[100.0, 0.0]]))
    lo, hi = feature_bounds(("mean", "entropy"), value_range=(0.0, 255.0), bins=8, like=out.double())
    assert lo.dtype == torch.float64 and lo.shape == (2, 1)
    assert torch.equal(torch.cat([lo, hi], 1), torch.tensor([[0.0, 255.0], [0.0, 3.0]], dtype=torch.float64))


def test_measured_features_normalise_into_0_100():
    g = torch.Generator().manual_seed(1)
    image = torch.rand(2, 1, 16, 16, generator=g) * 2 - 1
    labels = torch.randint(0, 3, (2, 16, 16), generator=g)
    f = region_features(image, labels, n_labels=3, names=("mean", "std", "entropy", "gradient"), bins=16)
    norm = f.normalised()
    assert (norm >= 0).all() and (norm <= 100).all()


@settings(max_examples=40, deadline=None)
@given(
    lo=st.floats(-1000, 1000),
    width=st.floats(0.01, 1000),
    bins=st.integers(2, 256),
    seed=st.integers(0, 2**16),
)
def test_property_normalisation_round_trips(lo, width, bins, seed):
    names = ("mean", "std", "entropy", "gradient")
    vr = (lo, lo + width)
    g = torch.Generator().manual_seed(seed)
    norm = torch.rand(3, len(names), 5, generator=g, dtype=torch.float64) * 100
    raw = denormalise_features(norm, names, value_range=vr, bins=bins)
    assert raw[:, 2].max() <= math.log2(bins) + 1e-9
    back = normalise_features(raw, names, value_range=vr, bins=bins)
    torch.testing.assert_close(back, norm, atol=1e-7, rtol=1e-9)


def test_normalise_shape_errors():
    with pytest.raises(ShapeError, match=r"N_F=len\(names\)=2"):
        normalise_features(torch.zeros(1, 3, 4), ("mean", "entropy"))
    with pytest.raises(ValidationError, match="Did you mean 'std'"):
        denormalise_features(torch.zeros(1, 1, 4), ("stdev",))
    with pytest.raises(ValidationError, match="floating-point"):
        normalise_features(torch.zeros(1, 1, 4, dtype=torch.long), ("mean",))
