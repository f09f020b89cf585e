import math

import pytest
import torch

from synthaug.errors import LabelError, ShapeError, SynthAugError, ValidationError
from synthaug.transforms import GaussianMixtureParams, GaussianMixtureSynth
from synthaug.transforms.labels_to_image import _gaussian_blur, resolution_matrix
from tests.transforms.conftest import assert_matches_up_to_rounding, phantom

FLAT = {"sigma_range": (0.0, 0.0), "bias_strength": 0.0, "gamma_std": 0.0}


def _batch(b=3, shape=(20, 18, 6)):
    pairs = [phantom(shape=shape, seed=s) for s in range(b)]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


@pytest.mark.parametrize("shape", [(20, 18, 6), (24, 20)], ids=["3d", "2d"])
def test_shape_dtype_device_kept_labels_untouched_output_in_input_range(shape):
    images, labels = _batch(shape=shape)
    labels[1, :, :2] = -1  # nnU-Net padding
    before = labels.clone()
    out, out_lab = GaussianMixtureSynth().apply_batch(images, labels, seeds=[1, 2, 3])
    assert out.shape == images.shape and out.dtype == images.dtype and out.device == images.device
    assert out_lab is labels and torch.equal(labels, before)
    lo, hi = images.flatten(1).amin(1), images.flatten(1).amax(1)
    o = out.flatten(1)
    assert (o.amin(1) >= lo - 1e-3).all() and (o.amax(1) <= hi + 1e-3).all()
    assert torch.isfinite(out).all() and not torch.allclose(out, images)
    d, _ = GaussianMixtureSynth().apply_batch(images.double(), labels.int(), seeds=[1, 2, 3])
    assert d.dtype == torch.float64


def test_batch_equals_per_sample_with_the_same_seeds():
    images, labels = _batch()
    labels[2][labels[2] == 3] = 7  # a different class table size per sample
    t = GaussianMixtureSynth(sigma_range=(0.5, 1.5))
    batch, _ = t.apply_batch(images, labels, seeds=[11, 12, 13])
    for i, s in enumerate([11, 12, 13]):
        one, _ = t.apply(images[i], labels[i], GaussianMixtureParams(s, True))
        assert torch.equal(batch[i], one)
    # a sample does not depend on what else shares the batch
    pair, _ = t.apply_batch(images[1:], labels[1:], seeds=[12, 13])
    assert torch.equal(pair, batch[1:])


def test_seeded_replay_and_different_seeds_differ():
    img, lab = phantom()
    t = GaussianMixtureSynth(prob=0.5)
    p = t.sample_params(generator=torch.Generator().manual_seed(3))
    assert p == t.sample_params(generator=torch.Generator().manual_seed(3))
    assert t.params_from_seed(p.seed, p.apply) == p
    a, _ = t.apply(img, lab, GaussianMixtureParams(7, True))
    b, _ = t.apply(img, lab, GaussianMixtureParams(7, True))
    c, _ = t.apply(img, lab, GaussianMixtureParams(8, True))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    g = torch.Generator().manual_seed(0)
    assert 60 < sum(t.sample_params(generator=g).apply for _ in range(200)) < 140
    out, out_lab = t.apply(img, lab, GaussianMixtureParams(7, False))
    assert out is img and out_lab is lab
    squeezed = lab[0]
    x, y = GaussianMixtureSynth()(img, squeezed, generator=torch.Generator().manual_seed(1))  # (*spatial) labels
    assert x.shape == img.shape and y is squeezed and not torch.equal(x, img)


def test_class_regions_are_homogeneous_without_blur_bias_and_gamma():
    images, labels = _batch(b=2)
    labels[1, :, :2] = -1  # padding: background for the intensities
    exact, _ = GaussianMixtureSynth(std_range=(0.0, 0.0), **FLAT).apply_batch(images, labels, seeds=[4, 5])
    for i in range(2):
        cls = labels[i].clamp_min(0)
        means = []
        for c in range(4):
            v = exact[i][cls == c]
            assert float(v.max() - v.min()) < 1e-3  # one value per class
            means.append(float(v.mean()))
        assert len({round(m, 2) for m in means}) == 4  # and the classes differ
    noisy, _ = GaussianMixtureSynth(std_range=(0.02, 0.02), **FLAT).apply_batch(images, labels, seeds=[4, 5])
    for i in range(2):
        span = float(images[i].max() - images[i].min())
        cls = labels[i].clamp_min(0)
        stds = torch.stack([noisy[i][cls == c].std() for c in range(4)]) / span
        assert (stds < 0.1).all()  # noise std 0.02 before the [0, 1] rescale: small relative to the range


def test_background_pinned_and_ignore_label_is_background():
    img, lab = phantom()
    flat, _ = GaussianMixtureSynth(random_background=False, std_range=(0.0, 0.0), mean_range=(0.2, 1.0),
                                   output_range="unit", **FLAT).apply(img, lab, GaussianMixtureParams(3, True))
    assert float(flat[lab == 0].max()) == pytest.approx(0.0, abs=1e-6)  # the darkest value, no noise
    lab9 = lab.clone()
    lab9[:, :3] = 9
    t = GaussianMixtureSynth(ignore_label=9, output_range=(0.0, 1.0), **FLAT)
    a, _ = t.apply(img, lab9, GaussianMixtureParams(3, True))
    ref_lab = torch.where(lab9 == 9, torch.zeros_like(lab9), lab9)
    b, _ = t.apply(img, ref_lab, GaussianMixtureParams(3, True))
    torch.testing.assert_close(a, b)


def test_blur_matches_scipy_and_bias_gamma_change_the_image():
    nd = pytest.importorskip("scipy.ndimage")
    x = torch.randn(2, 1, 10, 9, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = _gaussian_blur(x, torch.tensor([[2.0, 2.0, 2.0], [1.0, 0.5, 0.0]], dtype=torch.float64), 6)
    ref0 = nd.gaussian_filter(x[0, 0].numpy(), sigma=2.0, mode="nearest", truncate=3.0)
    ref1 = nd.gaussian_filter(x[1, 0].numpy(), sigma=[1.0, 0.5, 0.0], mode="nearest", truncate=6.0)
    torch.testing.assert_close(y[0, 0], torch.from_numpy(ref0))
    torch.testing.assert_close(y[1, 0], torch.from_numpy(ref1))
    img, lab = phantom()
    base, _ = GaussianMixtureSynth(**FLAT).apply(img, lab, GaussianMixtureParams(2, True))
    for key, value in (("sigma_range", (1.0, 2.0)), ("bias_strength", 0.5), ("gamma_std", 0.5)):
        other, _ = GaussianMixtureSynth(**{**FLAT, key: value}).apply(img, lab, GaussianMixtureParams(2, True))
        assert not torch.allclose(base, other), key


def test_bad_inputs_and_options_raise_clear_errors():
    images, labels = _batch(b=2)
    t = GaussianMixtureSynth()
    with pytest.raises(LabelError, match="non-integer"):
        t.apply_batch(images, labels.float() + 0.5, seeds=[0, 1])
    nan = images.clone()
    nan[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValidationError, match="NaN"):
        t.apply_batch(nan, labels, seeds=[0, 1])
    with pytest.raises(ShapeError, match="resample the label"):
        t.apply_batch(images, labels[..., :-1], seeds=[0, 1])
    with pytest.raises(ShapeError):
        t.apply_batch(images[:, 0], labels, seeds=[0, 1])
    with pytest.raises(ValidationError, match="one entry per sample"):
        t.apply_batch(images, labels, seeds=[0])
    empty, _ = t.apply_batch(images, torch.zeros_like(labels), seeds=[0, 1])  # background only: rendered too
    assert torch.isfinite(empty).all()
    big = labels.clone()
    big[0, 0, 0, 0, 0] = 70000
    with pytest.raises(LabelError, match="consecutive ids"):
        t.apply_batch(images, big, seeds=[0, 1])
    for kw, msg in (({"mean_range": (1.0, 0.0)}, "low <= high"), ({"std_range": (-0.1, 0.1)}, "std_range"),
                    ({"sigma_range": 1.0}, "pair"), ({"bias_points": 1}, "bias_points"),
                    ({"gamma_std": -1.0}, "gamma_std"), ({"output_range": "inputs"}, "output_range"),
                    ({"output_range": (1.0, 1.0)}, "low < high"), ({"prob": 2.0}, "prob")):
        with pytest.raises(ValidationError, match=msg):
            GaussianMixtureSynth(**kw)
    assert issubclass(ValidationError, SynthAugError)


# ------------------------------------------------------------------ acquisition-resolution simulation (SynthSeg)

RES = {"max_res_iso": 4.0, "max_res_aniso": 8.0}


def test_resolution_matrix_blurs_samples_coarsely_and_interpolates_back():
    nd = pytest.importorskip("scipy.ndimage")
    assert torch.equal(resolution_matrix(9, 1.0, 0.0), torch.eye(9, dtype=torch.float64))
    x = torch.randn(40, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    blur = resolution_matrix(40, 1.0, 1.3)  # full resolution: the blur alone
    ref = nd.gaussian_filter1d(x.numpy(), 1.3, mode="nearest", truncate=math.ceil(3 * 1.3) / 1.3)
    torch.testing.assert_close(blur @ x, torch.from_numpy(ref))
    for spacing in (1.5, 3.0, 7.9):
        r = resolution_matrix(40, spacing, 0.75 * spacing)
        m = int(40 / spacing)
        torch.testing.assert_close(r.sum(1), torch.ones(40, dtype=torch.float64))  # constants pass through
        assert int(torch.linalg.matrix_rank(r)) <= m  # only m coarse samples survive
        assert float((r @ x).std()) < float(x.std())
    with pytest.raises(ValidationError, match="spacing >= 1"):
        resolution_matrix(10, 0.5, 1.0)


def test_resolution_draws_follow_synthseg():
    def draws(n=3000, **kw):
        t = GaussianMixtureSynth(**kw)
        return [t._draw_resolution(s, 3) for s in range(n)]

    aniso = draws(max_res_aniso=8.0, prob_full_res=0.0)
    assert all(int((sp > 1).sum()) == 1 and float(sp.max()) <= 8.0 for sp, _ in aniso)  # one axis degraded
    iso = draws(max_res_iso=4.0, prob_full_res=0.0)
    assert all(bool((sp > 1).all()) and float(sp.max()) <= 4.0 for sp, _ in iso)  # every axis, independently
    both = draws(**RES)
    n_iso = sum(int((sp > 1).sum()) > 1 for sp, _ in both)
    n_full = sum(bool((sp == 1).all()) for sp, _ in both)
    assert 0.06 < n_iso / 3000 < 0.12 and 0.03 < n_full / 3000 < 0.07  # prob_iso 0.1 (x 0.95), prob_full_res 0.05
    for sp, sigma in both:
        kept = sp == 1
        assert bool(((sigma[kept] >= 0.5 / 1.03 - 1e-9) & (sigma[kept] <= 0.5 * 1.03 + 1e-9)).all())
        low = ~kept  # 0.75 x thickness, thickness in [1, spacing], jittered by 3 %
        assert bool(((sigma[low] >= 0.75 / 1.03 - 1e-9) & (sigma[low] <= 0.75 * sp[low] * 1.03 + 1e-9)).all())


def test_resolution_step_is_applied_last_and_leaves_the_other_draws():
    images, labels = _batch()
    plain = {"sigma_range": (0.0, 0.0), "output_range": "unit"}
    base, _ = GaussianMixtureSynth(**plain).apply_batch(images, labels, seeds=[1, 2, 3])
    full, _ = GaussianMixtureSynth(**plain, **RES, prob_full_res=1.0, res_blur_range=1.0).apply_batch(
        images, labels, seeds=[1, 2, 3])
    ref = _gaussian_blur(base.double(), torch.full((3, 3), 0.5, dtype=torch.float64), 2).float()
    torch.testing.assert_close(full, ref, atol=1e-5, rtol=1e-5)  # full resolution: only the 0.5-voxel blur
    low, _ = GaussianMixtureSynth(**plain, **RES, prob_full_res=0.0).apply_batch(images, labels, seeds=[1, 2, 3])
    grad = lambda v: sum(float(v.diff(dim=d).abs().mean()) for d in (2, 3, 4))  # noqa: E731
    assert grad(low) < grad(full) < grad(base)  # coarser acquisition, smoother image
    assert float(low.min()) >= -1e-6 and float(low.max()) <= 1 + 1e-6  # convex weights keep the range


@pytest.mark.parametrize("shape", [(20, 18, 6), (24, 20)], ids=["3d", "2d"])
def test_resolution_simulation_replays_and_batch_equals_per_sample(shape):
    images, labels = _batch(shape=shape)
    t = GaussianMixtureSynth(**RES)
    batch, out_lab = t.apply_batch(images, labels, seeds=[11, 12, 13])
    assert out_lab is labels and torch.isfinite(batch).all()
    for i, s in enumerate([11, 12, 13]):
        one, _ = t.apply(images[i], labels[i], GaussianMixtureParams(s, True))
        assert_matches_up_to_rounding(batch[i], one)
    again, _ = t.apply_batch(images, labels, seeds=[11, 12, 13])
    assert torch.equal(again, batch)
    off, _ = GaussianMixtureSynth().apply_batch(images, labels, seeds=[11, 12, 13])
    assert not torch.allclose(off, batch)


def test_resolution_options_are_validated():
    for kw, msg in (({"max_res_iso": 0.5}, "max_res_iso must lie in"), ({"max_res_aniso": "8"}, "max_res_aniso"),
                    ({"max_res_aniso": 100.0}, r"\[1.0, 16.0\]"), ({"prob_iso": 1.5}, "prob_iso"),
                    ({"prob_full_res": -0.1}, "prob_full_res"), ({"res_blur_range": 0.9}, "res_blur_range"),
                    ({"max_res_isotropic": 2.0}, "Did you mean 'max_res_iso'")):
        with pytest.raises(ValidationError, match=msg):
            GaussianMixtureSynth(**kw)
    assert not GaussianMixtureSynth().options.simulates_resolution
    assert GaussianMixtureSynth(max_res_aniso=2.0).options.simulates_resolution
