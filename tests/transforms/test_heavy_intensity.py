"""HeavyIntensityAugment: SmaugLab's retained intensity chain (the ``heavy_intensity`` transform)."""

import math

import pytest
import torch
import torch.nn.functional as F

from synthaug.errors import LabelError, ShapeError, SynthAugError, ValidationError
from synthaug.transforms.heavy_intensity import (
    OPS,
    HeavyIntensityAugment,
    HeavyIntensityOptions,
    HeavyIntensityParams,
    _dilate,
    _lowres_matrix,
    _scharr,
    only_op,
)
from tests.transforms.conftest import assert_matches_up_to_rounding, phantom

ALL_ON = {k: 1.0 for k in only_op("gamma")}
ALL_OFF = {k: 0.0 for k in only_op("gamma")}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _batch(b=4, shape=(20, 18, 6)):
    """Phantoms with different label sets per sample (values up to 3, one sample up to 7)."""
    pairs = [phantom(shape=shape, seed=s) for s in range(b)]
    images, labels = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    labels[1][labels[1] == 3] = 7
    return images, labels


def _run(images, labels, seeds=None, **options):
    seeds = list(range(11, 11 + images.shape[0])) if seeds is None else seeds
    return HeavyIntensityAugment(**options).apply_batch(images, labels, seeds=seeds)


@pytest.mark.parametrize("shape", [(20, 18, 6), (24, 20)], ids=["3d", "2d"])
@pytest.mark.parametrize("op", OPS)
def test_each_op_forced_on_changes_every_sample_and_leaves_the_labels(op, shape):
    images, labels = _batch(shape=shape)
    before = labels.clone()
    out, out_lab = _run(images, labels, **only_op(op))
    assert out_lab is labels and torch.equal(labels, before)
    assert out.shape == images.shape and out.dtype == images.dtype and torch.isfinite(out).all()
    for i in range(images.shape[0]):
        assert not torch.allclose(out[i], images[i], atol=1e-3), f"{op} left sample {i} unchanged"


def test_every_probability_zero_is_the_identity_and_prob_zero_skips():
    images, labels = _batch()
    out, out_lab = _run(images, labels, **ALL_OFF)
    assert out is images and out_lab is labels
    t = HeavyIntensityAugment(prob=0.0)
    p = t.sample_params(generator=torch.Generator().manual_seed(0))
    assert p.apply is False
    img, lab = images[0], labels[0]
    o, ol = t.apply(img, lab, p)
    assert o is img and ol is lab


def test_published_defaults_and_op_frequencies():
    o = HeavyIntensityOptions()
    published = {"inversion": 0.25, "histeq": 0.25, "redistribute": 0.4, "scharr": 0.25, "unsharp": 0.25,
                 "randconv": 0.2, "noise": 0.1, "blur": 0.2, "brightness": 0.15, "gamma": 0.3, "inv_gamma": 0.1,
                 "contrast": 0.15, "log1p": 0.1, "sqrt": 0.1, "sin": 0.1, "exp": 0.1, "sigmoid": 0.1, "lowres": 0.25,
                 "bias": 0.15}
    assert {op: getattr(o, f"{op}_p") for op in OPS} == published
    assert (o.histeq_mix_p, o.redistribute_in_seg_p, o.scharr_mix_p, o.unsharp_mix_p, o.randconv_mix_p) == (
        0.6, 0.25, 0.5, 0.5, 0.5)
    assert (o.unsharp_sigma, o.unsharp_amount, o.randconv_kernel_sizes, o.blur_sigma, o.noise_std) == (
        1.0, 1.5, (3, 5, 7), 1.0, 1.0)
    assert (o.brightness_range, o.gamma_range, o.contrast_range, o.lowres_scale, o.bias_coefficient) == (
        (0.75, 1.25), (0.7, 1.5), (0.75, 1.25), (0.5, 1.0), 0.2)
    # each op fires with its own probability, per sample
    t = HeavyIntensityAugment()
    from synthaug.transforms.heavy_intensity import _layout

    lay = _layout(3, 20)
    rows = torch.stack([t._draw(s, 3, lay) for s in range(3000)])[:, lay["apply"]]
    freq = rows.mean(0)
    for j, op in enumerate(OPS):
        assert abs(float(freq[j]) - published[op]) < 0.03, op


def test_seeded_replay_and_different_seeds_differ():
    img, lab = phantom()
    t = HeavyIntensityAugment(**ALL_ON)
    a, _ = t.apply(img, lab, HeavyIntensityParams(5, True))
    b, _ = t.apply(img, lab, HeavyIntensityParams(5, True))
    c, _ = t.apply(img, lab, HeavyIntensityParams(6, True))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    t = HeavyIntensityAugment(prob=0.5)
    p = t.sample_params(generator=torch.Generator().manual_seed(3))
    assert p == t.sample_params(generator=torch.Generator().manual_seed(3))
    assert t.params_from_seed(p.seed, p.apply) == p
    squeezed = lab[0]
    x, y = HeavyIntensityAugment(**ALL_ON)(img, squeezed, generator=torch.Generator().manual_seed(1))  # (*sp) labels
    assert x.shape == img.shape and y is squeezed and not torch.equal(x, img)


@pytest.mark.parametrize("shape", [(20, 18, 6), (24, 20)], ids=["3d", "2d"])
@pytest.mark.parametrize("options", [{}, ALL_ON, {"standardize": "foreground"}], ids=["defaults", "all_on", "fg"])
def test_batch_equals_per_sample_with_the_same_seeds(shape, options):
    images, labels = _batch(b=5, shape=shape)
    seeds = [101, 7, 55, 3, 1234]
    t = HeavyIntensityAugment(**options)
    batch, _ = t.apply_batch(images, labels, seeds=seeds)
    for i, s in enumerate(seeds):
        one, _ = t.apply(images[i], labels[i], HeavyIntensityParams(s, True))
        assert_matches_up_to_rounding(batch[i], one)
    part, _ = t.apply_batch(images[2:], labels[2:], seeds=seeds[2:])  # a sample ignores its batch neighbours
    for i in range(3):
        assert_matches_up_to_rounding(part[i], batch[2 + i])


def test_constant_and_flat_images_stay_finite():
    images, labels = _batch()
    const = torch.full_like(images, -1000.0)
    out, _ = _run(const, labels, **ALL_ON)
    assert torch.equal(out, const)  # a flat sample has no spread to augment: it comes back as it was
    flat = images.clone()
    flat[:, :, 5:] = 3.0  # mostly flat with one varying band
    for std in ("image", "foreground"):
        out, _ = _run(flat, labels, standardize=std, **ALL_ON)
        assert torch.isfinite(out).all()
        out, _ = _run(flat, torch.zeros_like(labels), standardize=std, **ALL_ON)  # no foreground at all
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_dtype_and_device_follow_the_input(dtype):
    images, labels = _batch(b=2)
    out, _ = _run(images.to(dtype), labels.int(), **ALL_ON)
    assert out.dtype == dtype and out.device == images.device and torch.isfinite(out).all()
    out, _ = _run(images.to(dtype), labels.float(), **only_op("redistribute"))  # integral float labels are read
    assert out.dtype == dtype


def test_inversion_keeps_mean_and_std_and_mirrors():
    images, labels = _batch()
    out, _ = _run(images, labels, **only_op("inversion"))
    mean = images.flatten(1).mean(1).reshape(-1, 1, 1, 1, 1)
    torch.testing.assert_close(out, 2 * mean - images, atol=1e-2, rtol=1e-4)


@pytest.mark.parametrize("op", ["histeq", "gamma", "inv_gamma", "log1p", "sqrt", "sin", "exp", "sigmoid"])
def test_monotone_ops_keep_the_order_and_the_stats(op):
    images, labels = _batch()
    out, _ = _run(images, labels, **only_op(op), histeq_mix_p=0.0)
    for i in range(images.shape[0]):
        x, y = images[i].flatten().double(), out[i].flatten().double()
        order = torch.argsort(x)
        steps = y[order].diff()
        assert float(steps.min()) >= -1e-3 * float(y.std()), op  # non-decreasing in the input
        assert float(y.mean()) == pytest.approx(float(x.mean()), abs=1e-2)
        assert float(y.std()) == pytest.approx(float(x.std()), rel=1e-3)


def test_contrast_brightness_and_noise_strengths():
    images, labels = _batch()
    for op in ("contrast", "brightness"):
        out, _ = _run(images, labels, **only_op(op))
        ratio = out.flatten(1).std(1) / images.flatten(1).std(1)
        assert ((ratio > 0.75 - 1e-4) & (ratio < 1.25 + 1e-4)).all(), op
        torch.testing.assert_close(out.flatten(1).mean(1), images.flatten(1).mean(1), atol=1e-2, rtol=1e-5)
    out, _ = _run(images, labels, **only_op("noise"))
    added = (out - images).flatten(1).std(1) / images.flatten(1).std(1)
    assert (added > 0).all() and (added < 1.05).all()  # noise std U(0, 1) in the sample's std units


def test_scharr_matches_scipy_and_randconv_matches_a_direct_convolution():
    nd = pytest.importorskip("scipy.ndimage")
    import numpy as np

    x = torch.randn(1, 1, 9, 8, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    deriv, smooth = np.array([-1.0, 0.0, 1.0]), np.array([3.0, 10.0, 3.0])
    ref = np.zeros(x.shape[2:])
    for d in range(3):
        k = np.ones((1, 1, 1))
        for a in range(3):
            shape = [1, 1, 1]
            shape[a] = 3
            k = k * (deriv if a == d else smooth).reshape(shape)
        ref += np.abs(nd.correlate(x[0, 0].numpy(), k, mode="mirror"))
    torch.testing.assert_close(_scharr(x)[0, 0], torch.from_numpy(ref))
    # the random convolution: a zero-padded 7-kernel with reflected borders == the small kernel, padded less
    images, labels = _batch(b=2)
    t = HeavyIntensityAugment(**only_op("randconv"), randconv_mix_p=0.0)
    out, _ = t.apply_batch(images, labels, seeds=[3, 4])
    from synthaug.transforms.heavy_intensity import _layout

    lay = _layout(3, 20)
    for i, s in enumerate([3, 4]):
        row = t._draw(s, 3, lay)
        kernel = t._randconv_kernel(row, lay, 3).float()
        k = int(row[lay["randconv"]][0])
        c = (7 - k) // 2
        small = kernel[c : c + k, c : c + k, c : c + k]
        z = (images[i : i + 1] - images[i].mean()) / images[i].std(unbiased=False)
        conv = F.conv3d(F.pad(z, (k // 2,) * 6, mode="reflect"), small[None, None])
        conv = (conv - conv.mean()) / conv.std(unbiased=False) * images[i].std(unbiased=False) + images[i].mean()
        torch.testing.assert_close(out[i : i + 1], conv, atol=1e-2, rtol=1e-4)


def test_lowres_matrix_is_linear_interpolation_down_and_up():
    x = torch.randn(1, 1, 11, 9, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    sizes = (6, 5, 3)
    ref = F.interpolate(F.interpolate(x, size=sizes, mode="trilinear", align_corners=False), size=x.shape[2:],
                        mode="trilinear", align_corners=False)
    from synthaug.transforms.labels_to_image import apply_axis_matrices

    mats = [_lowres_matrix(n, m)[None] for n, m in zip(x.shape[2:], sizes)]
    torch.testing.assert_close(apply_axis_matrices(x, mats), ref)
    assert torch.equal(_lowres_matrix(7, 7), torch.eye(7, dtype=torch.float64))


def test_dilation_is_the_3x3x3_max_filter():
    g = torch.Generator().manual_seed(0)
    for shape in ((3, 1, 9, 8, 7), (3, 1, 9, 8)):
        m = (torch.rand(shape, generator=g) > 0.9).float()
        pool = F.max_pool3d if len(shape) == 5 else F.max_pool2d
        assert torch.equal(_dilate(m), pool(m, 3, 1, 1))


def test_redistribution_reads_the_labels():
    # two labels share one intensity band: globally the output is a function of the intensity, inside the
    # regions it depends on the label too
    img = torch.zeros(1, 1, 16, 16, 4)
    img[..., 4:12, 4:12, :] = 1.0
    img = img + 0.05 * torch.randn(img.shape, generator=torch.Generator().manual_seed(0))
    lab = torch.zeros(1, 1, 16, 16, 4, dtype=torch.long)
    lab[..., 4:12, 4:8, :] = 1
    lab[..., 4:12, 8:12, :] = 2
    for seed in range(4):
        glob, _ = _run(img, lab, seeds=[seed], **only_op("redistribute"), redistribute_in_seg_p=0.0)
        order = torch.argsort(img.flatten())
        x_sorted, y_sorted = img.flatten()[order], glob.flatten()[order]
        same = x_sorted.diff() == 0
        assert torch.equal(y_sorted.diff()[same], torch.zeros_like(y_sorted.diff()[same]))
    inside, _ = _run(img, lab, seeds=[2], **only_op("redistribute"), redistribute_in_seg_p=1.0)
    a, b = inside[lab == 1], inside[lab == 2]
    assert abs(float(a.mean() - b.mean())) > 0.05 * float(inside.std())  # same input band, different labels
    bg_only, _ = _run(img, torch.zeros_like(lab), seeds=[2], **only_op("redistribute"))
    torch.testing.assert_close(bg_only, img, atol=1e-6, rtol=0)  # no foreground: nothing to redistribute (SmaugLab)


def test_affine_equivariance_and_standardisation():
    images, labels = _batch()
    a, b = 3.0, -120.0
    for options in ({}, ALL_ON):
        out, _ = _run(images, labels, **options)
        scaled, _ = _run(a * images + b, labels, **options)
        span = float(out.abs().max())
        torch.testing.assert_close(scaled, a * out + b, atol=2e-4 * a * span, rtol=1e-4)
    # only noise, brightness and bias depend on the units; gamma does not
    g_img, _ = _run(images, labels, **only_op("gamma"))
    g_fg, _ = _run(images, labels, standardize="foreground", **only_op("gamma"))
    torch.testing.assert_close(g_img, g_fg, atol=1e-2, rtol=1e-4)
    n_img, _ = _run(images, labels, **only_op("noise"))
    n_fg, _ = _run(images, labels, standardize="foreground", **only_op("noise"))
    assert not torch.allclose(n_img, n_fg, atol=1e-2)
    fg_std = torch.stack([images[i][labels[i] > 0].std(unbiased=False) for i in range(4)])
    added_fg = (n_fg - images).flatten(1).std(1)
    assert (added_fg < 1.05 * fg_std).all()  # noise in foreground-std units


def test_bad_inputs_and_options_raise_clear_errors():
    images, labels = _batch(b=2)
    t = HeavyIntensityAugment()
    with pytest.raises(LabelError, match="non-integer"):
        t.apply_batch(images, labels.float() + 0.5, seeds=[0, 1])
    with pytest.raises(ShapeError, match="resample the label"):
        t.apply_batch(images, labels[..., :-1], seeds=[0, 1])
    with pytest.raises(ShapeError):
        t.apply_batch(images[:, 0], labels, seeds=[0, 1])
    with pytest.raises(ValidationError, match="integer label values"):
        t.apply_batch(images, None, seeds=[0, 1])
    with pytest.raises(ValidationError, match="floating-point"):
        t.apply_batch(images.long(), labels, seeds=[0, 1])
    nan = images.clone()
    nan[0, 0, 0, 0, 0] = math.nan
    with pytest.raises(ValidationError, match="NaN"):
        t.apply_batch(nan, labels, seeds=[0, 1])
    with pytest.raises(ValidationError, match="one entry per sample"):
        t.apply_batch(images, labels, seeds=[0])
    for kw, msg in (({"gamma_p": 1.5}, "gamma_p must be a probability"), ({"noise_p": True}, "noise_p"),
                    ({"randconv_kernel_sizes": (3, 4)}, "odd integers"), ({"randconv_kernel_sizes": (9,)}, "odd"),
                    ({"gamma_range": (1.5, 0.7)}, "low <= high"), ({"lowres_scale": (0.0, 1.0)}, "lowres_scale"),
                    ({"bias_order": 2.5}, "bias_order"), ({"standardize": "foregrund"}, "Did you mean 'foreground'"),
                    ({"noise_std": -1.0}, "noise_std"), ({"gama_p": 0.1}, "Did you mean 'gamma_p'"),
                    ({"prob": 2.0}, "prob")):
        with pytest.raises(ValidationError, match=msg):
            HeavyIntensityAugment(**kw)
    with pytest.raises(ValidationError, match="unknown op 'gama'"):
        only_op("gama")
    assert issubclass(ValidationError, SynthAugError)


def test_monai_and_torchio_faces_run_on_a_tiny_volume():
    tio = pytest.importorskip("torchio")
    from monai.data import MetaTensor

    from synthaug.integrations.monai import RandHeavyIntensityAugment, RandHeavyIntensityAugmentd
    from synthaug.integrations.torchio import RandomHeavyIntensityAugment

    img, lab = phantom()
    affine = torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0]))
    t = RandHeavyIntensityAugmentd(image_key="image", label_key="label", prob=1.0, **ALL_ON)
    t.set_random_state(seed=4)
    a = t({"image": MetaTensor(img, affine=affine), "label": MetaTensor(lab.float(), affine=affine)})
    t.set_random_state(seed=4)
    b = t({"image": MetaTensor(img, affine=affine), "label": MetaTensor(lab.float(), affine=affine)})
    assert isinstance(a["image"], MetaTensor) and torch.equal(a["image"], b["image"])
    assert not torch.allclose(a["image"].as_tensor(), img) and torch.equal(a["label"].as_tensor(), lab.float())
    assert "synthaug_heavy_intensity" in a["image"].meta
    arr = RandHeavyIntensityAugment(prob=1.0, gamma_p=1.0)
    arr.set_random_state(0)
    out_img, out_lab = arr(img, lab)
    assert out_img.shape == img.shape and torch.equal(out_lab, lab)

    subject = tio.Subject(image=tio.ScalarImage(tensor=img, affine=affine.numpy()),
                          label=tio.LabelMap(tensor=lab, affine=affine.numpy()))
    torch.manual_seed(0)
    out = RandomHeavyIntensityAugment(**ALL_ON)(subject)
    assert not torch.allclose(out.image.data, img) and torch.equal(out.label.data, lab)
    again = out.get_composed_history()(tio.Subject(image=tio.ScalarImage(tensor=img, affine=affine.numpy()),
                                                   label=tio.LabelMap(tensor=lab, affine=affine.numpy())))
    assert torch.equal(again.image.data, out.image.data)
