"""region_features against a slow numpy reference, soft histograms, gradients, dtype/device, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from synthaug.errors import LabelError, ShapeError, SynthAugError, ValidationError
from synthaug.features import RegionFeatures, region_features

ALL = ("mean", "std", "entropy", "gradient")


def reference(image: np.ndarray, labels: np.ndarray, n_labels: int, bins: int, value_range=(-1.0, 1.0)):
    """Slow per-sample, per-label loop: mean, population std, np.histogram entropy, np.gradient RMS."""
    lo, hi = value_range
    batch = image.shape[0]
    out = np.zeros((batch, len(ALL), n_labels))
    present = np.zeros((batch, n_labels), dtype=bool)
    for b in range(batch):
        img = image[b, 0]
        grads = [np.gradient(img, axis=axis) for axis in range(img.ndim) if img.shape[axis] >= 2]
        rms = np.sqrt(sum(g**2 for g in grads) / img.ndim)
        for lab in range(n_labels):
            mask = labels[b] == lab
            if not mask.any():
                continue
            present[b, lab] = True
            vals = img[mask]
            hist, _ = np.histogram(np.clip(vals, lo, hi), bins=bins, range=(lo, hi))
            p = hist[hist > 0] / hist.sum()
            out[b, :, lab] = [vals.mean(), vals.std(), -(p * np.log2(p)).sum(), rms[mask].mean()]
    return out, present


def random_case(shape, n_labels, *, seed, absent=(), dtype=torch.float64, spread=1.2):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, n_labels, (shape[0], *shape[1:]), generator=g)
    for lab in absent:  # make region `lab` absent everywhere by moving its voxels to region 0
        labels[labels == lab] = 0
    image = (torch.rand(shape[0], 1, *shape[1:], generator=g, dtype=dtype) * 2 - 1) * spread
    return image, labels


@pytest.mark.parametrize("shape", [(3, 12, 10), (2, 6, 7, 5)], ids=["2d", "3d"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
def test_hard_features_match_reference(shape, dtype, tol):
    n_labels = 5
    image, labels = random_case(shape, n_labels, seed=1, absent=(3,), dtype=dtype)
    labels[0][labels[0] == 4] = 1  # region 4 absent in sample 0 only
    f = region_features(image, labels, n_labels=n_labels, names=ALL, bins=16)
    ref, present = reference(image.double().numpy(), labels.numpy(), n_labels, 16)
    assert f.values.shape == (shape[0], len(ALL), n_labels)
    np.testing.assert_allclose(f.values.double().numpy(), ref, atol=tol, rtol=tol)
    np.testing.assert_array_equal(f.present.numpy(), present)
    assert not f.present[:, 3].any() and not f.present[0, 4] and f.present[1, 4]
    assert (f.values[:, :, 3] == 0).all()


def test_value_range_and_bins_are_honoured():
    image, labels = random_case((2, 9, 9), 3, seed=2, spread=40.0)
    image = image + 50.0  # intensities in ~[10, 90], histogram over [0, 64]: some values clamped
    f = region_features(image, labels, n_labels=3, names=ALL, bins=8, value_range=(0.0, 64.0))
    ref, _ = reference(image.numpy(), labels.numpy(), 3, 8, value_range=(0.0, 64.0))
    np.testing.assert_allclose(f.values.numpy(), ref, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n_labels=st.integers(1, 6),
    spatial=st.sampled_from([(5, 4), (1, 7), (3, 4, 2), (2, 1, 3)]),
    batch=st.integers(1, 3),
    bins=st.integers(2, 20),
)
def test_property_matches_reference_and_bounds(seed, n_labels, spatial, batch, bins):
    image, labels = random_case((batch, *spatial), n_labels, seed=seed)
    f = region_features(image, labels, n_labels=n_labels, names=ALL, bins=bins)
    ref, present = reference(image.numpy(), labels.numpy(), n_labels, bins)
    np.testing.assert_allclose(f.values.numpy(), ref, atol=1e-9)
    np.testing.assert_array_equal(f.present.numpy(), present)
    entropy = f["entropy"]
    assert (entropy >= 0).all() and (entropy <= math.log2(bins) + 1e-9).all()


def test_label_layouts_and_float_labels_agree():
    image, labels = random_case((2, 8, 8), 4, seed=3)
    a = region_features(image, labels, n_labels=4).values
    b = region_features(image, labels[:, None], n_labels=4).values
    c = region_features(image, labels.double(), n_labels=4).values
    d = region_features(image, labels.to(torch.uint8), n_labels=4).values
    for other in (b, c, d):
        assert torch.equal(a, other)


def test_soft_equals_hard_for_values_at_bin_centres():
    bins = 10
    g = torch.Generator().manual_seed(4)
    centres = -1 + (torch.randint(0, bins, (2, 1, 9, 9), generator=g, dtype=torch.float64) + 0.5) * (2 / bins)
    labels = torch.randint(0, 3, (2, 9, 9), generator=g)
    hard = region_features(centres, labels, n_labels=3, bins=bins).values
    soft = region_features(centres, labels, n_labels=3, bins=bins, soft=True).values
    torch.testing.assert_close(soft, hard, atol=1e-10, rtol=0)


def test_soft_entropy_approaches_hard_as_bandwidth_shrinks():
    bins = 16
    image, labels = random_case((2, 24, 24), 3, seed=5, spread=1.0)
    hard = region_features(image, labels, n_labels=3, names=("entropy",), bins=bins).values
    width = 2 / bins
    errors = [
        (
            region_features(
                image, labels, n_labels=3, names=("entropy",), bins=bins, soft=True, bandwidth=bw
            ).values
            - hard
        )
        .abs()
        .max()
        .item()
        for bw in (width, 0.3 * width, 0.1 * width, 0.01 * width)
    ]
    assert errors == sorted(errors, reverse=True), errors
    assert errors[0] > 0.03 and errors[-1] < 1e-3, errors
    # the triangular kernel is a mild smoothing: close to hard on well-filled histograms
    tri = region_features(image, labels, n_labels=3, names=("entropy",), bins=bins, soft=True).values
    assert (tri - hard).abs().max() < 0.15


def test_soft_gaussian_histogram_conserves_mass_and_mean_std_unchanged():
    image, labels = random_case((2, 10, 10), 3, seed=6)
    hard = region_features(image, labels, n_labels=3, names=("mean", "std"))
    soft = region_features(image, labels, n_labels=3, names=("mean", "std"), soft=True, bandwidth=0.3)
    torch.testing.assert_close(soft.values, hard.values)
    huge = region_features(image, labels, n_labels=3, names=("entropy",), bins=8, soft=True, bandwidth=100.0)
    torch.testing.assert_close(huge.values, torch.full_like(huge.values, 3.0), atol=1e-3, rtol=0)


@pytest.mark.parametrize("bandwidth", [None, 0.15], ids=["triangular", "gaussian"])
def test_soft_features_pass_gradcheck(bandwidth):
    g = torch.Generator().manual_seed(7)
    image = ((torch.rand(1, 1, 3, 4, generator=g, dtype=torch.float64) * 1.6) - 0.8).requires_grad_()
    labels = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 1]]])

    def fn(x):
        return region_features(
            x, labels, n_labels=4, names=ALL, bins=6, soft=True, bandwidth=bandwidth
        ).values

    assert torch.autograd.gradcheck(fn, (image,), eps=1e-6, atol=1e-5)
    fn(image)[:, 2].sum().backward()  # the entropy really depends on the image
    assert image.grad.abs().sum() > 0


def test_gradients_are_finite_for_constant_regions():
    image = torch.zeros(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, 2:] = 1
    region_features(image, labels, n_labels=3, names=ALL, soft=True).values.sum().backward()
    assert torch.isfinite(image.grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_device_follow_input(dtype):
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        image, labels = random_case((2, 6, 6), 3, seed=8, dtype=dtype)
        f = region_features(image.to(device), labels.to(device), n_labels=3, names=ALL, soft=True)
        assert isinstance(f, RegionFeatures)
        assert f.values.dtype == dtype and f.values.device.type == device
        assert f.present.dtype == torch.bool and f.present.device.type == device


def test_record_accessors():
    image, labels = random_case((1, 6, 6), 2, seed=9)
    f = region_features(image, labels, n_labels=2, names=("mean", "entropy"), bins=8)
    assert f.names == ("mean", "entropy") and f.bins == 8 and f.value_range == (-1.0, 1.0)
    torch.testing.assert_close(f["entropy"], f.values[:, 1])
    torch.testing.assert_close(f.normalised()[:, 1], f.values[:, 1] * 100 / 3)
    with pytest.raises(ValidationError, match="not computed"):
        f["std"]


def _case():
    return random_case((2, 5, 5), 3, seed=10)


@pytest.mark.parametrize(
    "mutate,error,match",
    [
        (lambda i, lab: (i[:, 0], lab), ShapeError, "spatial dimensions"),
        (lambda i, lab: (i.repeat(1, 2, 1, 1), lab), ShapeError, "1 channel"),
        (lambda i, lab: ((i * 10).long(), lab), ValidationError, "floating-point"),
        (
            lambda i, lab: (
                i.index_put((torch.tensor(0),) * 4, torch.tensor(float("nan"), dtype=i.dtype)),
                lab,
            ),
            ValidationError,
            "NaN",
        ),
        (lambda i, lab: (i, lab.double() + 0.5), LabelError, "non-integer"),
        (
            lambda i, lab: (i, lab.index_put((torch.tensor(0),) * 3, torch.tensor(7))),
            LabelError,
            r"\[7\].*n_labels=3",
        ),
        (lambda i, lab: (i, lab.index_put((torch.tensor(1),) * 3, torch.tensor(-2))), LabelError, r"\[-2\]"),
        (lambda i, lab: (i, lab[:, :4]), ShapeError, "spatial shape"),
        (lambda i, lab: (i, lab[:1]), ShapeError, "batch"),
        (lambda i, lab: (i, lab[0]), ShapeError, "spatial"),
        (lambda i, lab: (i, lab[:, None, None].expand(2, 2, 1, 5, 5)), ShapeError, "B, 1, D, H, W"),
    ],
    ids=[
        "no-channel",
        "two-channels",
        "int-image",
        "nan",
        "fraction-labels",
        "label-too-big",
        "negative",
        "spatial-mismatch",
        "batch-mismatch",
        "unbatched-labels",
        "bad-5d-labels",
    ],
)
def test_bad_inputs_raise(mutate, error, match):
    image, labels = mutate(*_case())
    with pytest.raises(error, match=match) as info:
        region_features(image, labels, n_labels=3)
    assert isinstance(info.value, SynthAugError)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"names": ("mean", "entropi")}, "Did you mean 'entropy'"),
        ({"names": "mean"}, r"\('mean',\)"),
        ({"names": ()}, "at least one"),
        ({"names": ("mean", "mean")}, "repeat"),
        ({"bins": 1}, "bins must be an integer >= 2"),
        ({"value_range": (1.0, -1.0)}, "low < high"),
        ({"value_range": (0.0,)}, "pair"),
        ({"bandwidth": 0.1}, "soft=True"),
        ({"soft": True, "bandwidth": 0.0}, "bandwidth must be > 0"),
        ({"n_labels": 0}, "n_labels must be an integer >= 1"),
    ],
)
def test_bad_options_raise(kwargs, match):
    image, labels = _case()
    kwargs = {"n_labels": 3, **kwargs}
    with pytest.raises(ValidationError, match=match):
        region_features(image, labels, **kwargs)
