import pytest
import torch

from synthaug.errors import ShapeError, ValidationError, WeightsError
from synthaug.inference.sliding_window import sliding_window_inference
from synthaug.intensity import IntensityConvention
from synthaug.metrics.consistency import interslice_ratio
from synthaug.networks.unet_generator import UNetGenerator
from synthaug.training.eval_translate import translate_volume
from synthaug.transforms.modality_translate import ModalityTranslate, ModalityTranslateParams
from synthaug.weights import registry
from synthaug.weights.card import InferenceSpec, ModelCard
from synthaug.weights.store import save_weights

SHIPPED = "translate_brain_pd_t2_resgan"


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _save_translate(root, name, *, dims, identity=False, source="T1w", target="T2w", inference=None):
    torch.manual_seed(0)
    args = {"in_channels": 1, "out_channels": 1, "spatial_dims": dims, "widths": [4, 8], "residual": True,
            "output": "linear" if identity else "tanh"}
    net = UNetGenerator(**args)
    if identity:  # the residual skip alone: net(x) == x
        torch.nn.init.zeros_(net.final.weight)
        torch.nn.init.zeros_(net.final.bias)
    if inference is None:
        inference = (InferenceSpec(canvas=(16, 16), pad_value=-1.0) if dims == 2 else
                     InferenceSpec(patch=(8, 8, 8), overlap=0.5, weighting="uniform", pad_value=-1.0))
    card = ModelCard(
        name=name, family="translate", architecture="unet_generator", arguments=args, spatial_dims=dims,
        in_channels=1, out_channels=1, intensity=IntensityConvention.percentile(1, 99).to_dict(),
        modality=target, source_modality=source, target_modality=target, training_cases=("simmr_2024_000:T1w",),
        inference=inference, training={"config": {"size": 16}},
    )
    stored = save_weights(net, card, root / "files" / f"{name}.safetensors")
    (root / "cards" / f"{name}.json").write_text(stored.to_json())


def make_tiny_translate_registry(root, monkeypatch):
    """A registry folder with tiny translation generators: an untrained 2D T1w->T2w U-Net, identity 2D/3D ones
    (zeroed last layer + residual skip + linear output) and a card stating no modalities."""
    (root / "cards").mkdir(exist_ok=True)
    _save_translate(root, "tiny_t1_t2_2d", dims=2)
    _save_translate(root, "tiny_identity_2d", dims=2, identity=True)
    _save_translate(root, "tiny_identity_3d", dims=3, identity=True)
    _save_translate(root, "tiny_unnamed_2d", dims=2, source="", target="")
    monkeypatch.setenv("SYNTHAUG_WEIGHTS_PATH", str(root))
    registry.clear_cache()
    return root


@pytest.fixture
def tiny_translate_weights(tmp_path, monkeypatch):
    yield make_tiny_translate_registry(tmp_path, monkeypatch)
    registry.clear_cache()


def mr_volume(shape=(20, 18, 12), seed=0):
    """A simulated-looking MR volume (1, X, Y, Z): a bright ellipsoid with two tissues, noise; and its label."""
    g = torch.Generator().manual_seed(seed)
    x, y, z = torch.meshgrid(*(torch.linspace(-1, 1, n) for n in shape), indexing="ij")
    r = x**2 + y**2 + (z / 1.2) ** 2
    lab = (r < 0.8).long() + (r < 0.3).long()
    img = torch.tensor([5.0, 300.0, 700.0])[lab] + 20 * torch.randn(shape, generator=g)
    return img[None], lab[None]


# --------------------------------------------------------------------------------- the checklist


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_device_kept_and_labels_untouched(dtype):
    img, lab = mr_volume()
    t = ModalityTranslate(SHIPPED, source="PDw", target="T2w")
    out, out_lab = t.apply(img.to(dtype), lab, ModalityTranslateParams(0, True))
    assert out.shape == img.shape and out.dtype == dtype and out.device == img.device
    assert out_lab is lab and torch.isfinite(out).all() and not torch.allclose(out, img.to(dtype))
    # batched: labels are returned as the same object, whatever they are
    outs, labs = t.apply_batch(img[None].to(dtype), lab[None], seeds=[1])
    assert labs is not None and torch.equal(labs, lab[None]) and outs.dtype == dtype
    assert t.apply_batch(img[None], None, seeds=[1])[1] is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_runs_on_the_input_device():  # pragma: no cover - CPU machines
    img, _ = mr_volume()
    out, _ = ModalityTranslate(SHIPPED).apply(img.cuda(), None, ModalityTranslateParams(0, True))
    assert out.is_cuda
    torch.testing.assert_close(out.cpu(), ModalityTranslate(SHIPPED).apply(img, None, ModalityTranslateParams(0, True))[0],
                               atol=1e-3, rtol=1e-3)


def test_prob_zero_is_identity_and_sampling_replays():
    img, lab = mr_volume()
    t = ModalityTranslate(SHIPPED, prob=0.0)
    out, out_lab = t(img, lab, generator=torch.Generator().manual_seed(0))
    assert out is img and out_lab is lab
    half = ModalityTranslate(SHIPPED, prob=0.5)
    a = [half.sample_params(generator=torch.Generator().manual_seed(3)) for _ in range(2)]
    assert a[0] == a[1]
    g = torch.Generator().manual_seed(0)
    draws = [half.sample_params(generator=g).apply for _ in range(200)]
    assert 60 < sum(draws) < 140


def test_seeded_replay_is_equal():
    img, lab = mr_volume()
    t = ModalityTranslate(SHIPPED, prob=0.7)
    a, _ = t(img, lab, generator=torch.Generator().manual_seed(5))
    b, _ = t(img, lab, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    p = t.sample_params(generator=torch.Generator().manual_seed(5))
    c, _ = t.apply(img, lab, p)
    assert torch.equal(a, c)


@pytest.mark.parametrize("weights", [SHIPPED, "tiny_t1_t2_2d"])
def test_batch_equals_per_sample(tiny_translate_weights, weights):
    (i1, _), (i2, _) = mr_volume(seed=1), mr_volume(seed=2)
    i2 = i2 * 3 + 100  # another intensity scale: the fit is per volume
    t = ModalityTranslate(weights)
    batch, _ = t.apply_batch(torch.stack([i1, i2]), None, seeds=[11, 12])
    one, _ = t.apply(i1, None, ModalityTranslateParams(11, True))
    two, _ = t.apply(i2, None, ModalityTranslateParams(12, True))
    torch.testing.assert_close(batch[0], one, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(batch[1], two, atol=1e-3, rtol=1e-4)
    small, _ = ModalityTranslate(weights, chunk=1).apply_batch(torch.stack([i1, i2]), None, seeds=[0, 0])
    torch.testing.assert_close(small, batch, atol=1e-3, rtol=1e-4)


def test_same_inference_as_the_evaluation_protocol():
    img, _ = mr_volume(shape=(40, 36, 20))
    t = ModalityTranslate(SHIPPED, output_range="normalised")
    out, _ = t.apply(img, None, ModalityTranslateParams(0, True))
    net, card = registry.load(SHIPPED)
    conv = card.intensity_convention
    x = conv.normalise(img[0], conv.fit(img[0]))
    ref = translate_volume(net, x, spatial_dims=3, inference=card.inference, overlap=0.5)
    torch.testing.assert_close(out[0], ref, atol=1e-4, rtol=1e-4)


def test_output_range_conventions():
    img, _ = mr_volume()
    lo, hi = torch.quantile(img.flatten(), torch.tensor([0.01, 0.99])).tolist()
    outs = {r: ModalityTranslate(SHIPPED, output_range=r).apply(img, None, ModalityTranslateParams(0, True))[0]
            for r in ("input", "normalised")}
    assert outs["normalised"].min() >= -1 and outs["normalised"].max() <= 1  # the card's target convention
    assert outs["input"].min() >= lo - 1e-3 and outs["input"].max() <= hi + 1e-3  # the input's own range
    torch.testing.assert_close(outs["input"], (outs["normalised"] + 1) / 2 * (hi - lo) + lo, atol=1e-3, rtol=1e-4)
    fixed, _ = ModalityTranslate(SHIPPED, output_range=(0, 10)).apply(img, None, ModalityTranslateParams(0, True))
    torch.testing.assert_close(fixed, (outs["normalised"] + 1) * 5)


# --------------------------------------------------------------------------------- modes


def test_3d_patch_mode_equals_the_whole_volume_result_for_an_identity_generator(tiny_translate_weights):
    img, _ = mr_volume(shape=(21, 18, 13))
    t = ModalityTranslate("tiny_identity_3d", output_range="normalised", overlap=0.5)
    assert t.mode == "patches" and t.patch_size == (8, 8, 8)
    out, _ = t.apply(img, None, ModalityTranslateParams(0, True))
    net, card = registry.load("tiny_identity_3d")
    conv = card.intensity_convention
    x = conv.normalise(img[None], conv.fit_batch(img[None]))
    whole = net(torch.nn.functional.pad(x, (0, 3, 0, 2, 0, 3), value=-1.0))[..., :21, :18, :13]  # one pass, no patches
    torch.testing.assert_close(out[None], whole, atol=1e-6, rtol=0)
    torch.testing.assert_close(out[None], x, atol=1e-6, rtol=0)
    back, _ = ModalityTranslate("tiny_identity_3d").apply(img, None, ModalityTranslateParams(0, True))
    lo, hi = torch.quantile(img.flatten(), torch.tensor([0.01, 0.99])).tolist()
    torch.testing.assert_close(back, img.clamp(lo, hi), atol=1e-3, rtol=1e-5)  # input range: identity up to clipping


def test_2d_slice_mode_on_volumes_and_images_with_interslice_consistency(tiny_translate_weights):
    img, _ = mr_volume(shape=(20, 18, 6))
    t = ModalityTranslate("tiny_t1_t2_2d", source="T1w", target="T2w")
    assert t.mode == "slices"
    out, _ = t.apply(img, None, ModalityTranslateParams(0, True))
    assert out.shape == img.shape and torch.isfinite(out).all()
    ratio = interslice_ratio(out[0], axis=2)
    assert ratio == ratio and 0 < ratio < float("inf")
    flat, _ = t.apply(img[..., 3], None, ModalityTranslateParams(0, True))  # a 2D image (1, X, Y)
    assert flat.shape == (1, 20, 18)
    # slicing along axis 0 is slicing the permuted volume along axis 2
    a, _ = ModalityTranslate("tiny_t1_t2_2d", slice_axis=0).apply(img, None, ModalityTranslateParams(0, True))
    b, _ = t.apply(img.permute(0, 2, 3, 1), None, ModalityTranslateParams(0, True))
    torch.testing.assert_close(a, b.permute(0, 3, 1, 2), atol=1e-4, rtol=1e-4)


def test_2d_patch_mode_equals_slice_mode_for_an_identity_generator(tiny_translate_weights):
    img, _ = mr_volume(shape=(30, 26, 4))
    slices, _ = ModalityTranslate("tiny_identity_2d").apply(img, None, ModalityTranslateParams(0, True))
    patches, _ = ModalityTranslate("tiny_identity_2d", mode="patches", patch_size=8).apply(
        img, None, ModalityTranslateParams(0, True))
    torch.testing.assert_close(patches, slices, atol=1e-4, rtol=1e-6)


def test_patch_windows_follow_the_options(tiny_translate_weights):
    t = ModalityTranslate("tiny_identity_3d", patch_size=(8, 8, 4), overlap=0.25, weighting="gaussian")
    assert t.patch_size == (8, 8, 4) and t.overlap == 0.25 and t.weighting == "gaussian"
    img, _ = mr_volume(shape=(16, 16, 8))
    out, _ = t.apply(img, None, ModalityTranslateParams(0, True))
    ref = sliding_window_inference(img[None], lambda p: p, patch_size=(8, 8, 4), overlap=0.25, weighting="gaussian")
    lo, hi = torch.quantile(img.flatten(), torch.tensor([0.01, 0.99])).tolist()
    torch.testing.assert_close(out[None], ref.clamp(lo, hi), atol=1e-3, rtol=1e-5)
    with pytest.raises(ValidationError, match="divisible by 4"):
        ModalityTranslate("tiny_identity_3d", patch_size=6).apply(img, None, ModalityTranslateParams(0, True))


# --------------------------------------------------------------------------------- errors


def test_modality_mismatch_names_the_cards_modalities(tiny_translate_weights):
    with pytest.raises(ValidationError, match=r"translate PDw -> T2w: source='T1w' but the card's source_modality is "
                                              r"'PDw'.*tiny_t1_t2_2d"):
        ModalityTranslate(SHIPPED, source="T1w", target="T2w")
    with pytest.raises(ValidationError, match=r"target='FLAIR' but the card's target_modality is 'T2w'.*No registered "
                                              r"weights translate PDw -> FLAIR.*'translate_brain_pd_t2_resgan': 'PDw -> T2w'"):
        ModalityTranslate(SHIPPED, target="FLAIR")
    assert ModalityTranslate(SHIPPED, source="pdw", target="t2w").source == "PDw"  # case-insensitive
    with pytest.raises(WeightsError, match="does not state its source_modality"):
        ModalityTranslate("tiny_unnamed_2d", source="T1w")
    assert ModalityTranslate("tiny_unnamed_2d").source == ""


def test_bad_inputs_give_clear_errors(tiny_translate_weights):
    t = ModalityTranslate(SHIPPED)
    p = ModalityTranslateParams(0, True)
    img, lab = mr_volume()
    nan = img.clone()
    nan[0, 3, 3, 3] = float("nan")
    with pytest.raises(ValidationError, match=r"1 NaN or infinite value.*nan_to_num"):
        t.apply(nan, lab, p)
    with pytest.raises(ShapeError, match=r"3D generator.*\(B, 1, X, Y, Z\)"):
        t.apply(img[..., 0], lab, p)
    with pytest.raises(ShapeError, match=r"1 channel"):
        t.apply(img[0], lab, p)
    with pytest.raises(ShapeError, match=r"image\[None\]"):
        t.apply(img[None], lab, p)
    with pytest.raises(ValidationError, match=r"floating-point.*\.float\(\)"):
        t.apply(img.long(), lab, p)
    with pytest.raises(ValidationError, match="torch.Tensor"):
        t.apply(img.numpy(), lab, p)
    with pytest.raises(ShapeError, match="resample the label"):
        t.apply_batch(img[None], lab[None, :, :10], seeds=[0])
    with pytest.raises(ValidationError, match="one entry per sample"):
        t.apply_batch(img[None], None, seeds=[0, 1])


def test_bad_options_give_clear_errors(tiny_translate_weights):
    with pytest.raises(WeightsError, match="Did you mean 'translate_brain_pd_t2_resgan'"):
        ModalityTranslate("translate_brain_pd_t2_resgn")
    with pytest.raises(WeightsError, match="'context' model, not a 'translate' one.*translate_brain_pd_t2_resgan"):
        ModalityTranslate("context_ct_a")
    with pytest.raises(ValidationError, match="Did you mean 'slices'"):
        ModalityTranslate(SHIPPED, mode="slice")
    with pytest.raises(ValidationError, match="3D generator.*mode='patches'"):
        ModalityTranslate(SHIPPED, mode="slices")
    with pytest.raises(ValidationError, match="overlap"):
        ModalityTranslate(SHIPPED, overlap=1.0)
    with pytest.raises(ValidationError, match="output_range"):
        ModalityTranslate(SHIPPED, output_range="raw")
    with pytest.raises(ValidationError, match="low < high"):
        ModalityTranslate(SHIPPED, output_range=(1, 0))
    with pytest.raises(ValidationError, match="patch_size"):
        ModalityTranslate(SHIPPED, patch_size=(8, 8))
    with pytest.raises(ValidationError, match="chunk"):
        ModalityTranslate(SHIPPED, chunk=0)
    with pytest.raises(ValidationError, match="prob"):
        ModalityTranslate(SHIPPED, prob=2)
