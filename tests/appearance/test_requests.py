"""Feature requests from the appearance sources: shapes, range, replay, consistency with the sources."""

import numpy as np
import pytest
import torch

from synthaug.appearance.physics import SUPERCLASS_NAMES, class_signals
from synthaug.appearance.remap import AppearanceRanges, remap_appearance, sample_appearance
from synthaug.appearance.requests import (
    PhysicsDraw,
    appearance_requests,
    measure_requests,
    physics_region_means,
    physics_requests,
    sample_physics,
)
from synthaug.errors import ValidationError


def _labels(b: int = 3, n: int = 40) -> torch.Tensor:
    lab = torch.zeros(b, n, n, dtype=torch.long)
    lab[:, 6:20, 6:20] = SUPERCLASS_NAMES.index("liver")
    lab[:, 6:20, 24:34] = SUPERCLASS_NAMES.index("spleen")
    lab[:, 24:36, 6:30] = SUPERCLASS_NAMES.index("muscle")
    return lab


def test_appearance_requests_measure_the_remapped_image():
    g = torch.Generator().manual_seed(0)
    labels = _labels()
    image = (torch.randn(3, 1, 40, 40, generator=g) * 0.1 + 0.2 * labels[:, None]).clamp(-1, 1) - 0.5
    params = sample_appearance(3, generator=g, ranges=AppearanceRanges(mean_range=(-0.8, 0.8)))
    req = appearance_requests(image, labels, params, n_labels=9, names=("mean", "entropy"))
    assert req.shape == (3, 2, 9) and req.min() >= 0 and req.max() <= 1
    direct = measure_requests(remap_appearance(image, labels, params, n_labels=9), labels, n_labels=9,
                              names=("mean", "entropy"))
    assert torch.equal(req, direct)
    assert not torch.allclose(req, measure_requests(image, labels, n_labels=9, names=("mean", "entropy")))


def test_physics_requests_replay_and_follow_the_literature_order():
    labels = _labels()
    draw = PhysicsDraw((1, 2, 3), ("T1w", "T2w", "T1w"), (1.5, 1.5, 3.0))
    req = physics_requests(labels, draw, names=("mean", "entropy"))
    assert req.shape == (3, 2, 9) and torch.equal(req, physics_requests(labels, draw, names=("mean", "entropy")))
    means = physics_region_means(labels, draw, variability=0.0, heterogeneity=0.0)
    liver, spleen, muscle = (SUPERCLASS_NAMES.index(n) for n in ("liver", "spleen", "muscle"))
    assert means[0, liver] > means[0, spleen]  # T1w
    assert means[1, spleen] > means[1, liver] > means[1, muscle]  # T2w
    assert torch.isnan(means[0, SUPERCLASS_NAMES.index("kidneys")])  # absent region
    assert set(class_signals("T1w")) == set(SUPERCLASS_NAMES)
    # As an appearance source: the remap moves each region to the simulated means.
    image = torch.zeros(3, 1, 40, 40) + 0.05 * torch.randn(3, 1, 40, 40, generator=torch.Generator().manual_seed(1))
    p = sample_appearance(3, generator=torch.Generator().manual_seed(2),
                          ranges=AppearanceRanges(noise_range=(0, 0), contrast_range=(0.5, 0.5)))
    out = remap_appearance(image, labels, p, n_labels=9, means=means)
    got = out[1, 0][labels[1] == spleen].mean()
    assert float(got) == pytest.approx(float(means[1, spleen]), abs=1e-3)


def test_sample_physics_is_seeded_and_validated():
    a = sample_physics(5, generator=torch.Generator().manual_seed(0))
    assert a == sample_physics(5, generator=torch.Generator().manual_seed(0)) and len(a) == 5
    assert set(a.fields_t) <= {1.5, 3.0}
    with pytest.raises(ValidationError, match="contrast"):
        PhysicsDraw((1,), ("T9w",), (1.5,))
    with pytest.raises(ValidationError, match="field"):
        PhysicsDraw((1,), ("T1w",), (7.0,))
    with pytest.raises(ValidationError, match="sample"):
        physics_requests(_labels(2), a, names=("mean",))
    assert np.isfinite(physics_requests(_labels(5), a, names=("mean", "entropy")).numpy()).all()


def test_requests_outside_the_trained_range_raise_or_are_clipped():
    from synthaug.appearance import check_requests, clip_requests
    from synthaug.weights.card import FeatureStats

    stats = FeatureStats(min=[[0.1, 0.2], [0.3, 0.0]], max=[[0.4, 0.5], [0.9, 0.6]])  # 2 classes x 2 features
    ok = torch.tensor([[[0.2, 0.5], [0.3, 0.3]]])
    check_requests(ok, stats)
    bad = torch.tensor([[[0.2, 0.99], [0.3, 0.3]]])
    with pytest.raises(ValidationError, match="class 1 .*outside the generator's trained range"):
        check_requests(bad, stats)
    check_requests(bad, stats, present=torch.tensor([[True, False]]))  # absent region: not checked
    clipped = clip_requests(bad, stats)
    assert float(clipped[0, 0, 1]) == pytest.approx(0.9) and torch.equal(clipped[0, 1], bad[0, 1])
    with pytest.raises(ValidationError, match="feature statistics"):
        check_requests(torch.zeros(1, 3, 2), stats)
    with pytest.raises(ValidationError, match="card.features.stats"):
        check_requests(ok, {"min": [], "max": []})
