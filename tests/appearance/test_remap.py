"""Appearance remapping: labels untouched, rank order per curve kind, range, replay, batched == per-sample."""

import pytest
import torch

from synthaug.appearance.remap import (
    KINDS,
    AppearanceParams,
    AppearanceRanges,
    draw_region_appearance,
    remap_appearance,
    sample_appearance,
)
from synthaug.errors import LabelError, ShapeError, ValidationError


def _batch(b: int = 4, size: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.zeros(b, size, size, dtype=torch.long)
    labels[:, 4:14, 3:20] = 1
    labels[:, 12:22, 8:16] = 2
    labels[1:, 0:3, 0:3] = 3  # region 3 absent from sample 0
    texture = torch.randn(b, 1, size, size, generator=g) * 0.2  # continuous: no ties inside regions
    image = (torch.tensor([-0.6, 0.1, 0.5, -0.2])[labels][:, None] + texture).clamp(-0.99, 0.99)
    return image, labels


def _only(kind: str, **kw) -> AppearanceRanges:
    probs = tuple(1.0 if k == kind else 0.0 for k in KINDS)
    return AppearanceRanges(kind_probs=probs, background_kind_probs=probs, noise_range=(0.0, 0.0),
                            contrast_range=(0.2, 0.5), **kw)


def test_output_finite_in_range_dtype_device_and_labels_untouched():
    image, labels = _batch()
    before = labels.clone()
    params = sample_appearance(4, generator=torch.Generator().manual_seed(1),
                               ranges=AppearanceRanges(contrast_range=(0.25, 20.0), noise_range=(0.0, 0.5)))
    out = remap_appearance(image, labels, params, n_labels=4)
    assert out.shape == image.shape and out.dtype == image.dtype and out.device == image.device
    assert torch.isfinite(out).all() and out.min() >= -1 and out.max() <= 1
    assert torch.equal(labels, before)
    assert not torch.allclose(out, image)
    out64 = remap_appearance(image.double(), labels, params, n_labels=4)
    assert out64.dtype == torch.float64


@pytest.mark.parametrize("kind,sign", [("increasing", 1), ("decreasing", -1)])
def test_rank_order_kept_or_reversed_inside_each_region(kind, sign):
    image, labels = _batch()
    params = sample_appearance(4, generator=torch.Generator().manual_seed(2), ranges=_only(kind))
    out = remap_appearance(image, labels, params, n_labels=4)
    for b in range(4):  # test-side check, per sample and region
        for lab in range(4):
            m = labels[b] == lab
            if not m.any():
                continue
            x, y = image[b, 0][m], out[b, 0][m]
            order = torch.argsort(x)
            diffs = y[order].diff()
            assert (sign * diffs >= -1e-6).all(), (kind, b, lab)
            assert (sign * diffs).sum() > 0  # not flattened to a constant


def test_non_monotone_curves_exist_and_change_rank_order():
    image, labels = _batch()
    params = sample_appearance(4, generator=torch.Generator().manual_seed(3), ranges=_only("non_monotone"))
    out = remap_appearance(image, labels, params, n_labels=4)
    m = labels[0] == 1
    x, y = image[0, 0][m], out[0, 0][m]
    d = y[torch.argsort(x)].diff()
    assert (d > 1e-6).any() and (d < -1e-6).any()


def test_background_is_increasing_by_default():
    image, labels = _batch()
    ranges = AppearanceRanges(kind_probs=(0.0, 1.0, 0.0), noise_range=(0.0, 0.0))
    params = sample_appearance(4, generator=torch.Generator().manual_seed(9), ranges=ranges)
    ra = draw_region_appearance(params, n_labels=4)
    assert (ra.kind[:, 0] == 0).all() and (ra.kind[:, 1:] == 1).all()
    out = remap_appearance(image, labels, params, n_labels=4)
    m = labels[0] == 0
    x, y = image[0, 0][m], out[0, 0][m]
    assert (y[torch.argsort(x)].diff() >= -1e-6).all()


def test_region_means_and_contrast_follow_the_draws():
    image, labels = _batch()
    ranges = AppearanceRanges(noise_range=(0.0, 0.0), contrast_range=(0.5, 0.5), mean_range=(-0.5, 0.5))
    params = sample_appearance(4, generator=torch.Generator().manual_seed(4), ranges=ranges)
    out = remap_appearance(image, labels, params, n_labels=4)
    ra = draw_region_appearance(params, n_labels=4)
    m = labels[2] == 1
    assert out[2, 0][m].mean() == pytest.approx(float(ra.mean[2, 1]), abs=1e-4)
    assert out[2, 0][m].std(unbiased=False) == pytest.approx(0.5 * float(image[2, 0][m].std(unbiased=False)), rel=1e-3)


def test_replay_from_the_record_is_exact_and_batched_equals_per_sample():
    image, labels = _batch()
    params = sample_appearance(4, generator=torch.Generator().manual_seed(5), prob=0.7)
    out = remap_appearance(image, labels, params, n_labels=4)
    again = remap_appearance(image, labels, AppearanceParams(params.seeds, params.apply, params.ranges), n_labels=4)
    assert torch.equal(out, again)
    for b in range(4):
        one = remap_appearance(image[b : b + 1], labels[b : b + 1], params.select(b), n_labels=4)
        assert torch.equal(one, out[b : b + 1])
    assert sample_appearance(4, generator=torch.Generator().manual_seed(5), prob=0.7) == params


def test_inactive_regions_and_samples_are_bit_identical():
    image, labels = _batch()
    ranges = AppearanceRanges(remap_background=False)
    params = AppearanceParams((11, 12, 13, 14), (True, False, True, True), ranges)
    out = remap_appearance(image, labels, params, n_labels=4)
    assert torch.equal(out[1], image[1])
    bg = labels == 0
    assert torch.equal(out[:, 0][bg], image[:, 0][bg])


def test_means_override_and_3d_input():
    image, labels = _batch()
    means = torch.full((4, 4), float("nan"))
    means[:, 2] = 0.3
    params = sample_appearance(4, generator=torch.Generator().manual_seed(6), ranges=AppearanceRanges(noise_range=(0, 0), contrast_range=(0.3, 0.3)))
    out = remap_appearance(image, labels, params, n_labels=4, means=means)
    assert out[0, 0][labels[0] == 2].mean() == pytest.approx(0.3, abs=1e-4)
    vol = image[:2].reshape(1, 1, 2, 24, 24)
    lab = labels[:2].reshape(1, 2, 24, 24)
    out3 = remap_appearance(vol, lab, params.select(0), n_labels=4)
    assert out3.shape == vol.shape and out3.abs().max() <= 1


def test_bad_input_raises_clear_errors():
    image, labels = _batch()
    params = sample_appearance(4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ShapeError, match="one entry per image"):
        remap_appearance(image[:2], labels[:2], params, n_labels=4)
    with pytest.raises(LabelError, match="outside"):
        remap_appearance(image, labels, params, n_labels=3)
    with pytest.raises(ValidationError, match="kind_probs"):
        AppearanceRanges(kind_probs=(1.0, 0.0))
    with pytest.raises(ValidationError, match="contrast_range"):
        AppearanceRanges(contrast_range=(0.0, 1.0))
    with pytest.raises(ValidationError, match="generator"):
        sample_appearance(2, generator=0)
    with pytest.raises(ValidationError, match="unknown appearance option"):
        AppearanceRanges.from_dict({"mean_rnage": [0, 1]})
    r = AppearanceRanges(mean_range=(-0.5, 0.5))
    assert AppearanceRanges.from_dict(r.to_dict()) == r

    class Card:
        training = {"config": {"appearance": {"mean_range": [-0.5, 0.5]}}}

    assert AppearanceRanges.from_card(Card()) == r
    assert AppearanceRanges.from_card(object()) == AppearanceRanges()
