"""The feature registry: built-ins, lookup errors, custom features used end to end."""

from __future__ import annotations

import math

import pytest
import torch

from synthaug.errors import ShapeError, ValidationError
from synthaug.features import (
    FeatureSpec,
    available_features,
    get_feature,
    normalise_features,
    region_features,
    register_feature,
    unregister_feature,
)


@pytest.fixture
def temporary():
    """Register specs for one test and always remove them afterwards."""
    added: list[str] = []

    def add(spec: FeatureSpec, **kwargs) -> FeatureSpec:
        register_feature(spec, **kwargs)
        added.append(spec.name)
        return spec

    yield add
    for name in added:
        if name in available_features():
            unregister_feature(name)


def test_builtins_are_registered_with_ranges():
    assert {"mean", "std", "entropy", "gradient"} <= set(available_features())
    vr, bins = (-1.0, 3.0), 16
    assert get_feature("mean").range_for(value_range=vr, bins=bins) == (-1.0, 3.0)
    assert get_feature("std").range_for(value_range=vr, bins=bins) == (0.0, 2.0)
    assert get_feature("entropy").range_for(value_range=vr, bins=bins) == (0.0, 4.0)
    assert all(get_feature(n).differentiable for n in ("mean", "std", "entropy", "gradient"))


def test_unknown_name_suggests_closest():
    with pytest.raises(ValidationError, match=r"unknown feature name 'entrpy'.*Did you mean 'entropy'\?"):
        get_feature("entrpy")
    with pytest.raises(ValidationError, match="registered features are"):
        get_feature("zzzzzz")


def test_custom_feature_works_end_to_end(temporary):
    spec = temporary(
        FeatureSpec(
            "second_moment",
            lambda s: s.region_mean(s.flat.square()),
            True,
            lambda vr, bins: (0.0, max(abs(vr[0]), abs(vr[1])) ** 2),
        )
    )
    assert get_feature("second_moment") is spec and "second_moment" in available_features()
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 1, 7, 7, generator=g, dtype=torch.float64) * 2 - 1
    labels = torch.randint(0, 3, (2, 7, 7), generator=g)
    f = region_features(image, labels, n_labels=3, names=("mean", "std", "second_moment"))
    torch.testing.assert_close(f["second_moment"], f["mean"] ** 2 + f["std"] ** 2)
    norm = normalise_features(f.values, f.names, value_range=(-2.0, 2.0))
    torch.testing.assert_close(norm[:, 2], f["second_moment"] * 100 / 4)


def test_fixed_tuple_range_and_registration_rules(temporary):
    spec = temporary(FeatureSpec("fixed", lambda s: s.mean, False, (0.0, 10.0)))
    assert spec.range_for(value_range=(-1.0, 1.0), bins=4) == (0.0, 10.0)
    with pytest.raises(ValidationError, match="already registered"):
        register_feature(FeatureSpec("fixed", lambda s: s.mean, False, (0.0, 1.0)))
    temporary(FeatureSpec("fixed", lambda s: s.mean, False, (0.0, 1.0)), overwrite=True)
    assert get_feature("fixed").natural_range == (0.0, 1.0)
    assert unregister_feature("fixed").name == "fixed" and "fixed" not in available_features()
    with pytest.raises(ValidationError, match="unknown feature"):
        unregister_feature("fixed")


@pytest.mark.parametrize(
    "spec,match",
    [
        (FeatureSpec("", lambda s: s.mean, True, (0.0, 1.0)), "identifier"),
        (FeatureSpec("has space", lambda s: s.mean, True, (0.0, 1.0)), "identifier"),
        (FeatureSpec("not_callable", 3, True, (0.0, 1.0)), "callable"),  # type: ignore[arg-type]
        ("mean", "must be a FeatureSpec"),
    ],
)
def test_bad_specs_rejected(spec, match):
    with pytest.raises(ValidationError, match=match):
        register_feature(spec)  # type: ignore[arg-type]


def test_bad_natural_range_and_bad_compute_shape(temporary):
    temporary(FeatureSpec("flat_range", lambda s: s.mean, True, (1.0, 1.0)))
    with pytest.raises(ValidationError, match="hi > lo"):
        get_feature("flat_range").range_for(value_range=(-1.0, 1.0), bins=4)
    temporary(FeatureSpec("wrong_shape", lambda s: s.mean.sum(-1), True, (0.0, 1.0)))
    image, labels = torch.zeros(1, 1, 3, 3), torch.zeros(1, 3, 3, dtype=torch.long)
    with pytest.raises(ShapeError, match=r"'wrong_shape' returned shape \(1,\)"):
        region_features(image, labels, n_labels=2, names=("wrong_shape",))
    assert math.isclose(get_feature("entropy").range_for(value_range=(0.0, 1.0), bins=2)[1], 1.0)
