import pytest
import torch

from synthaug.errors import LabelError, ValidationError, WeightsError
from synthaug.transforms.context_texture import ContextTextureParams, ContextTextureSynth
from synthaug.transforms.elastic import sample_displacement, warp_labels
from tests.transforms.conftest import (
    assert_matches_up_to_rounding,
    assert_refuses_bad_image_and_label,
    phantom,
)


def test_same_seed_same_output_and_different_seed_differs(tiny_weights):
    img, lab = phantom()
    t = ContextTextureSynth("tiny_ct", labels_are_classes=True)
    p = ContextTextureParams(seed=7, apply=True)
    a, la = t.apply(img, lab, p)
    b, lb = t.apply(img, lab, p)
    assert torch.equal(a, b) and torch.equal(la, lb)
    c, _ = t.apply(img, lab, ContextTextureParams(seed=8, apply=True))
    assert not torch.equal(a, c)


def test_sample_params_replays_from_generator(tiny_weights):
    t = ContextTextureSynth("tiny_ct", labels_are_classes=True, prob=0.5)
    p1 = [t.sample_params(generator=torch.Generator().manual_seed(3)) for _ in range(2)]
    assert p1[0] == p1[1]
    g = torch.Generator().manual_seed(0)
    applied = [t.sample_params(generator=g).apply for _ in range(200)]
    assert 60 < sum(applied) < 140


def test_prob_zero_is_identity(tiny_weights):
    img, lab = phantom()
    t = ContextTextureSynth("tiny_ct", labels_are_classes=True, prob=0.0)
    out, out_lab = t(img, lab, generator=torch.Generator().manual_seed(0))
    assert out is img and out_lab is lab


def test_without_deformation_labels_are_untouched(tiny_weights):
    img, lab = phantom()
    out, out_lab = ContextTextureSynth("tiny_ct", labels_are_classes=True, deform=False).apply(img, lab, ContextTextureParams(1, True))
    assert torch.equal(out_lab, lab)
    assert out.shape == img.shape and not torch.equal(out, img)


def test_deformed_label_is_returned_with_the_image(tiny_weights):
    img, lab = phantom(shape=(24, 24, 4))
    t = ContextTextureSynth("tiny_ct", labels_are_classes=True, deform=True, max_displacement=4.0, control_points=4)
    _, out_lab = t.apply(img, lab, ContextTextureParams(5, True))
    disp = sample_displacement((24, 24, 4), batch=1, control_points=4, max_displacement=4.0,
                               generator=torch.Generator().manual_seed(5))
    assert torch.equal(out_lab, warp_labels(lab[None], disp)[0])
    assert not torch.equal(out_lab, lab)


def test_batched_equals_per_sample(tiny_weights):
    (i1, l1), (i2, l2) = phantom(seed=1), phantom(seed=2)
    t = ContextTextureSynth("tiny_mr_oasis", labels_are_classes=True, features="card")
    batch_img, batch_lab = t.apply_batch(torch.stack([i1, i2]), torch.stack([l1, l2]), seeds=[11, 12])
    one, one_lab = t.apply(i1, l1, ContextTextureParams(11, True))
    two, _ = t.apply(i2, l2, ContextTextureParams(12, True))
    torch.testing.assert_close(batch_img[0], one)
    torch.testing.assert_close(batch_img[1], two)
    assert torch.equal(batch_lab[0], one_lab)


@pytest.mark.parametrize("weights", ["tiny_ct_noise", "tiny_mr_oasis"])
def test_noise_draws_do_not_depend_on_chunking_or_batching(tiny_weights, weights):
    (i1, l1), (i2, l2) = phantom(seed=1), phantom(seed=2)
    big = ContextTextureSynth(weights, labels_are_classes=True, chunk=64)
    small = ContextTextureSynth(weights, labels_are_classes=True, chunk=4)
    a, _ = big.apply_batch(torch.stack([i1, i2]), torch.stack([l1, l2]), seeds=[5, 6])
    b, _ = small.apply(i2, l2, ContextTextureParams(6, True))
    torch.testing.assert_close(a[1], b)
    c, _ = small.apply(i2, l2, ContextTextureParams(7, True))
    assert not torch.allclose(b, c)


def test_dtype_follows_input_and_output_in_input_scale(tiny_weights):
    img, lab = phantom()
    out, out_lab = ContextTextureSynth("tiny_ct", labels_are_classes=True).apply(img.double(), lab.int(), ContextTextureParams(2, True))
    assert out.dtype == torch.float64 and out_lab.dtype == torch.int32
    assert out.min() >= -200 - 1e-3 and out.max() <= 300 + 1e-3  # the card's CT window, in HU


def test_out_of_window_voxels_keep_the_input_values(tiny_weights):
    img, lab = phantom(shape=(20, 18, 4))
    img = img.clone()
    img[:, :3] = -1000.0  # air rows outside the body
    img[:, 16:, :, :] = 900.0  # dense bone rows
    outside = (img < -200) | (img > 300)
    out, _ = ContextTextureSynth("tiny_ct", labels_are_classes=True, deform=False).apply(img, lab, ContextTextureParams(2, True))
    assert torch.equal(out[outside], img[outside])
    assert out[~outside].min() >= -200 - 1e-3 and out[~outside].max() <= 300 + 1e-3
    raw, _ = ContextTextureSynth("tiny_ct", labels_are_classes=True, deform=False, keep_outside_window=False).apply(
        img, lab, ContextTextureParams(2, True))
    assert raw.min() >= -200 - 1e-3 and raw.max() <= 300 + 1e-3  # the generator alone saturates
    torch.testing.assert_close(raw[~outside], out[~outside])
    # deformed: the restored values move with the label (a constant air block stays exact inside)
    warped, _ = ContextTextureSynth("tiny_ct", labels_are_classes=True, deform=True, max_displacement=1.5).apply(
        img, lab, ContextTextureParams(3, True))
    torch.testing.assert_close(warped[:, 0], img[:, 0], atol=1e-3, rtol=0)  # 3 air rows, displacement <= 2
    # an MR percentile generator is untouched by the option
    mr = ContextTextureSynth("tiny_mr_oasis", labels_are_classes=True, deform=False, features="card")
    a, _ = mr.apply(img, lab, ContextTextureParams(4, True))
    b, _ = ContextTextureSynth("tiny_mr_oasis", labels_are_classes=True, deform=False, features="card", keep_outside_window=False).apply(
        img, lab, ContextTextureParams(4, True))
    assert torch.equal(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_follows_input(tiny_weights):  # runs wherever a GPU exists
    img, lab = phantom()
    out, out_lab = ContextTextureSynth("tiny_ct", labels_are_classes=True).apply(img.cuda(), lab.cuda(), ContextTextureParams(2, True))
    assert out.is_cuda and out_lab.is_cuda


def test_2d_input_and_odd_sizes(tiny_weights):
    img, lab = phantom(shape=(21, 19, 3))
    out, _ = ContextTextureSynth("tiny_ct", labels_are_classes=True, features="ranges", ranges={"mean": (0.4, 0.6), "entropy": (0.1, 0.3)}).apply(
        img[..., 1], lab[..., 1], ContextTextureParams(0, True))
    assert out.shape == img[..., 1].shape


def test_label_map_translates_user_values(tiny_weights):
    img, lab = phantom()
    user = torch.tensor([0, 10, 20, 30])[lab]
    t = ContextTextureSynth("tiny_ct", deform=False, label_map={0: 0, 10: 1, 20: 2, 30: 3})
    out_user, lab_out = t.apply(img, user, ContextTextureParams(3, True))
    out_plain, _ = ContextTextureSynth("tiny_ct", labels_are_classes=True, deform=False).apply(img, lab, ContextTextureParams(3, True))
    torch.testing.assert_close(out_user, out_plain)
    assert torch.equal(lab_out, user)


def test_bad_inputs_raise_clear_errors(tiny_weights):
    img, lab = phantom()
    t = ContextTextureSynth("tiny_ct", labels_are_classes=True)
    p = ContextTextureParams(0, True)
    assert_refuses_bad_image_and_label(t, img, lab, p)
    with pytest.raises(LabelError, match="label_map does not cover"):
        ContextTextureSynth("tiny_ct", label_map={0: 0, 1: 1}).apply(img, lab, p)
    with pytest.raises(ValidationError, match="features"):
        ContextTextureSynth("tiny_ct", features="perturbed")


def test_unknown_and_corrupted_weights(tiny_weights):
    with pytest.raises(WeightsError, match="Did you mean 'tiny_ct'"):
        ContextTextureSynth("tiny_cat")
    with pytest.raises(WeightsError, match="'style' model, not a 'context' one.*tiny_ct"):
        ContextTextureSynth("style_ct_a")
    path = tiny_weights / "files" / "tiny_ct.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    img, lab = phantom()
    with pytest.raises(WeightsError, match="sha256"):
        ContextTextureSynth("tiny_ct", labels_are_classes=True).apply(img, lab, ContextTextureParams(0, True))


def test_calibration_brings_regions_to_the_requested_ranges(tiny_weights):
    from synthaug.features import normalise_features, region_features

    img, lab = phantom(shape=(32, 32, 4))
    ranges = {"mean": (0.55, 0.6), "entropy": (0.3, 0.35)}
    plain = ContextTextureSynth("tiny_ct9", labels_are_classes=True, deform=False, features="ranges", ranges=ranges, calibrate=False)
    calib = ContextTextureSynth("tiny_ct9", labels_are_classes=True, deform=False, features="ranges", ranges=ranges, calibrate=True)
    p = ContextTextureParams(3, True)

    def mean_feature(out):
        x = plain.card.intensity_convention.normalise(out)  # back to [-1, 1]
        slices = x[0].movedim(-1, 0)[:, None]
        labels = lab[0].movedim(-1, 0)
        rf = region_features(slices, labels, n_labels=9, names=("mean",), bins=16)
        return normalise_features(rf.values, ("mean",), bins=16)[:, 0, 1:4] / 100

    err_plain = (mean_feature(plain.apply(img, lab, p)[0]) - 0.575).abs().mean()
    err_calib = (mean_feature(calib.apply(img, lab, p)[0]) - 0.575).abs().mean()
    assert err_calib < 0.05 and err_calib < err_plain


@pytest.mark.parametrize("source", ["randomised", "physics", "mixed", "contrast_phase"])
def test_appearance_mode_samples_a_new_appearance_per_volume_and_replays(source):
    """Issue 15: the appearance-sampling mode of an appearance-randomised generator (context_dr_ct_a)."""
    from tests.test_pins import _ct_phantom

    img, lab = _ct_phantom(shape=(48, 44, 4))
    t = ContextTextureSynth("context_dr_ct_a", features="appearance", appearance_source=source, deform=False,
                            labels_are_classes=True, keep_outside_window=False)
    a, la = t.apply(img, lab, t.params_from_seed(3))
    again, _ = t.apply(img, lab, t.params_from_seed(3))
    other, _ = t.apply(img, lab, t.params_from_seed(4))
    assert torch.equal(a, again) and torch.equal(la, lab)  # replay is exact; labels untouched
    assert torch.isfinite(a).all() and not torch.allclose(a, other)
    batch, _ = t.apply_batch(torch.stack([img, img]), torch.stack([lab, lab]), seeds=[3, 4])
    torch.testing.assert_close(batch[0], a, atol=1e-3, rtol=1e-4)  # batch == per sample
    torch.testing.assert_close(batch[1], other, atol=1e-3, rtol=1e-4)
    # the same anatomy under different appearances: liver vs muscle contrast moves far beyond a 10 % perturbation
    outs = [t.apply(img, lab, t.params_from_seed(s))[0] for s in range(6)]
    contrast = [float(o[lab == 5].mean()) - float(o[lab == 7].mean()) for o in outs]
    assert max(contrast) - min(contrast) > 20.0


def test_contrast_phase_source_renders_the_drawn_phase_attenuation():
    """Within CT, appearance_source='contrast_phase' asks the generator for the drawn phase's attenuation per
    region: the contrast-filled vessels of an arterial draw come out far brighter than unenhanced blood."""
    from synthaug.appearance.contrast_phase import phase_region_hu, sample_contrast_phase
    from tests.test_pins import _ct_phantom

    img, lab = _ct_phantom(shape=(48, 44, 4))
    t = ContextTextureSynth("context_dr_ct_a", features="appearance", appearance_source="contrast_phase",
                            deform=False, labels_are_classes=True, keep_outside_window=False)
    by_phase = {}
    for seed in range(40):
        p = t.params_from_seed(seed)
        region_seed = int(torch.randint(0, 2**62, (), generator=_after_uniform(seed)))
        draw = sample_contrast_phase(region_seed)
        if draw.phase in by_phase:
            continue
        out, _ = t.apply(img, lab, p)
        want = float(phase_region_hu(draw, t.card.labels)[5])
        got = float(out[lab == 5].mean())
        assert got == pytest.approx(min(want, 300.0), abs=40.0), (draw.phase, want, got)  # the window ends at 300 HU
        by_phase[draw.phase] = got
        if len(by_phase) == 4:
            break
    assert by_phase["arterial"] > by_phase["non_contrast"] + 100


def _after_uniform(seed: int) -> torch.Generator:
    """The transform's per-volume generator after its first draw (the source choice), as _appearance_requests
    consumes it: the next integer is the appearance seed."""
    g = torch.Generator().manual_seed(seed)
    torch.rand((), generator=g)
    return g


def test_appearance_mode_refuses_generators_and_vocabularies_it_cannot_serve(tiny_weights):
    with pytest.raises(ValidationError, match="appearance-randomised generator"):
        ContextTextureSynth("context_ct_a", features="appearance", labels_are_classes=True)
    with pytest.raises(ValidationError, match="appearance_source"):
        ContextTextureSynth("context_dr_mni", features="appearance", appearance_source="physics",
                            labels_are_classes=True)
    with pytest.raises(ValidationError, match="appearance_source"):
        ContextTextureSynth("context_dr_ct_a", features="appearance", appearance_source="simulated")
    with pytest.raises(ValidationError, match="super-classes"):
        ContextTextureSynth("context_dr_mni", features="appearance", appearance_source="contrast_phase",
                            labels_are_classes=True)


def test_simulated_acquisition_changes_only_what_it_draws(tiny_weights):
    (i1, l1), (i2, l2) = phantom(seed=1), phantom(seed=2)
    images, labels = torch.stack([i1, i2]), torch.stack([l1, l2])
    plain = ContextTextureSynth("tiny_mr_oasis", labels_are_classes=True, features="card", deform=False)
    acq = ContextTextureSynth("tiny_mr_oasis", labels_are_classes=True, features="card", deform=False,
                              acquisition_prob=1.0, blur_max=1.5, resolution_max=3.0)
    a, la = plain.apply_batch(images, labels, seeds=[11, 12])
    b, lb = acq.apply_batch(images, labels, seeds=[11, 12])
    assert torch.equal(la, lb) and torch.isfinite(b).all()
    for i in range(2):
        assert not torch.equal(a[i], b[i])
        # the rendered volume is only blurred, shaded and resampled: it stays within its own range
        assert b[i].min() >= a[i].min() - 1e-4 and b[i].max() <= a[i].max() + 1e-4
    # a batch gives what per-sample calls give, and the call replays
    assert_matches_up_to_rounding(b[1], acq.apply(i2, l2, ContextTextureParams(12, True))[0])
    assert torch.equal(b, acq.apply_batch(images, labels, seeds=[11, 12])[0])
    assert "acquisition_prob" in repr(acq)


def test_pool_small_regions_uses_the_volume_features_where_a_slice_has_too_few_voxels():
    from synthaug.transforms.context_texture import pool_small_regions

    # 1 volume x 3 slices, 1 feature, regions (background, A, B)
    per_slice = torch.tensor([[[0.0, 0.2, 0.9]], [[0.0, 0.4, 0.5]], [[0.0, 0.9, 0.0]]])
    count = torch.tensor([[50.0, 30.0, 2.0], [50.0, 10.0, 20.0], [50.0, 3.0, 0.0]])
    out = pool_small_regions(per_slice, count, n_per=3, min_voxels=8)
    pooled_a = (0.2 * 30 + 0.4 * 10 + 0.9 * 3) / 43
    pooled_b = (0.9 * 2 + 0.5 * 20) / 22
    expected = torch.tensor([[[0.0, 0.2, pooled_b]], [[0.0, 0.4, 0.5]], [[0.0, pooled_a, pooled_b]]])
    torch.testing.assert_close(out, expected)
    assert torch.equal(pool_small_regions(per_slice, count, n_per=3, min_voxels=0), per_slice)  # rule off
    # two volumes are pooled separately
    two = pool_small_regions(torch.cat([per_slice, per_slice * 0]), torch.cat([count, count]), n_per=3, min_voxels=8)
    torch.testing.assert_close(two[:3], expected)
    torch.testing.assert_close(two[3:], per_slice * 0)


def test_regions_too_small_for_a_texture_render_finite_and_replay(tiny_weights):
    """Issue 15 (bad input): a structure of a few voxels per slice takes the documented fallback, never garbage."""
    img, lab = phantom()
    lab = lab.clone()
    lab[0, 16, 15:17, :] = 3  # a 2-voxel patch of region 3 on every slice
    t = ContextTextureSynth("tiny_ct", labels_are_classes=True, deform=False)
    a, _ = t.apply(img, lab, ContextTextureParams(4, True))
    assert torch.isfinite(a).all() and torch.equal(a, t.apply(img, lab, ContextTextureParams(4, True))[0])
    with pytest.raises(ValidationError, match="min_texture_voxels"):
        ContextTextureSynth("tiny_ct", labels_are_classes=True, min_texture_voxels=-1)
