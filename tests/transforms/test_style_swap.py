import numpy as np
import pytest
import torch

from synthaug.errors import DataError, LabelError, LeakageError, ShapeError, ValidationError
from synthaug.intensity import IntensityConvention
from synthaug.metrics.consistency import interslice_ratio
from synthaug.networks.style import StyleSwapGenerator
from synthaug.transforms.elastic import sample_displacement, warp_labels
from synthaug.transforms.style_swap import StyleBank, StyleCase, StyleSwap, StyleSwapParams
from synthaug.weights import registry
from synthaug.weights.card import BodyMaskSpec, FeatureSpec, ModelCard
from synthaug.weights.store import save_weights
from tests.transforms.conftest import assert_refuses_bad_image_and_label

LABELS = ("background", "a", "b", "c")


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _save_style(root, name, intensity, **kw):
    torch.manual_seed(0)
    args = {"n_labels": 4, "spatial_dims": 2, "style_dim": 4, "encoder_widths": [4], "encoder_downsample": 1,
            "widths": [8, 4], "z_dim": 2, "hidden": 4, "global_code": False, "body_class": True, "min_pixels": 2}
    args.update(kw)
    net = StyleSwapGenerator(**args)
    card = ModelCard(
        name=name, family="style", architecture="style_swap_generator", arguments=args, spatial_dims=2,
        in_channels=4, out_channels=1, intensity=intensity.to_dict(), labels=LABELS,
        features=FeatureSpec(body_mask=BodyMaskSpec(threshold=0.05, value_range=(-1.0, 1.0), opening_size=3)),
        training_cases=("ctA_z000-093",), training={"mode": "paired"},
    )
    stored = save_weights(net, card, root / "files" / f"{name}.safetensors")
    (root / "cards" / f"{name}.json").write_text(stored.to_json())


def make_tiny_style_registry(root, monkeypatch):
    """A registry folder with tiny untrained style generators (CT window + body class; MR with global code)."""
    (root / "cards").mkdir()
    _save_style(root, "tiny_style", IntensityConvention.ct_window(-200, 300))
    _save_style(root, "tiny_style_mr", IntensityConvention.percentile(1, 99), global_code=True, body_class=False,
                z_dim=0)
    monkeypatch.setenv("SYNTHAUG_WEIGHTS_PATH", str(root))
    registry.clear_cache()
    return root


@pytest.fixture
def tiny_style_weights(tmp_path, monkeypatch):
    yield make_tiny_style_registry(tmp_path, monkeypatch)
    registry.clear_cache()


def volume(shape=(20, 18, 4), seed=0, organ_hu=(50.0, 120.0, 250.0), classes=(1, 2, 3)):
    """A body (ellipse, fat) in air with three organs; (1, X, Y, Z) image in HU and label."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.meshgrid(torch.arange(shape[0]), torch.arange(shape[1]), indexing="ij")
    body = (((x - shape[0] / 2) / (0.45 * shape[0])) ** 2 + ((y - shape[1] / 2) / (0.45 * shape[1])) ** 2) < 1
    lab2 = torch.zeros(shape[:2], dtype=torch.long)
    lab2[4:10, 4:9] = classes[0]
    lab2[11:15, 5:9] = classes[1]
    lab2[6:12, 10:14] = classes[2]
    lab = lab2[..., None].expand(shape).clone()
    hu = torch.tensor([-100.0, *organ_hu])
    img = torch.where(body[..., None], hu[lab], torch.full(shape, -1000.0)) + 10 * torch.randn(shape, generator=g)
    return img[None], lab[None]


def bank(**kw) -> StyleBank:
    a_img, a_lab = volume(seed=1, organ_hu=(20.0, 200.0, 60.0))
    b_img, b_lab = volume(seed=2, organ_hu=(150.0, -50.0, 0.0), classes=(1, 2, 1))  # no class 3
    return StyleBank([{"image": a_img, "label": a_lab, "id": "ctA_z000-003"},
                      {"image": b_img, "label": b_lab, "id": "ctA_z010-013"}], **kw)


def test_same_seed_same_output_and_different_seed_differs(tiny_style_weights):
    img, lab = volume()
    t = StyleSwap("tiny_style", labels_are_classes=True, bank=bank())
    p = t.params_from_seed(7)
    a, la = t.apply(img, lab, p)
    b, lb = t.apply(img, lab, p)
    assert torch.equal(a, b) and torch.equal(la, lb)
    c, _ = t.apply(img, lab, StyleSwapParams(8, True, p.style_index, p.style_id))  # other noise, same style
    assert not torch.equal(a, c)


def test_sample_params_record_and_replay(tiny_style_weights):
    t = StyleSwap("tiny_style", labels_are_classes=True, bank=bank(), prob=0.5)
    p1 = [t.sample_params(generator=torch.Generator().manual_seed(3)) for _ in range(2)]
    assert p1[0] == p1[1] and p1[0].style_id in t.bank.ids
    assert t.bank.ids[p1[0].style_index] == p1[0].style_id
    g = torch.Generator().manual_seed(0)
    params = [t.sample_params(generator=g) for _ in range(200)]
    assert 60 < sum(p.apply for p in params) < 140
    assert {p.style_index for p in params} == {0, 1}


def test_prob_zero_is_identity(tiny_style_weights):
    img, lab = volume()
    t = StyleSwap("tiny_style", labels_are_classes=True, bank=bank(), prob=0.0)
    out, out_lab = t(img, lab, generator=torch.Generator().manual_seed(0))
    assert out is img and out_lab is lab


def test_labels_are_returned_consistently(tiny_style_weights):
    img, lab = volume(shape=(24, 24, 3))
    out, out_lab = StyleSwap("tiny_style", labels_are_classes=True, bank=bank()).apply(img, lab, StyleSwapParams(1, True))
    assert torch.equal(out_lab, lab) and out.shape == img.shape and not torch.equal(out, img)
    t = StyleSwap("tiny_style", labels_are_classes=True, bank=bank(), deform=True, max_displacement=3.0, control_points=4)
    _, warped = t.apply(img, lab, StyleSwapParams(5, True))
    disp = sample_displacement((24, 24, 3), batch=1, control_points=4, max_displacement=3.0,
                               generator=torch.Generator().manual_seed(5))
    assert torch.equal(warped, warp_labels(lab[None], disp)[0]) and not torch.equal(warped, lab)


def test_batched_equals_per_sample(tiny_style_weights):
    (i1, l1), (i2, l2) = volume(seed=3), volume(seed=4)
    t = StyleSwap("tiny_style", labels_are_classes=True, bank=bank())
    out, out_lab = t.apply_batch(torch.stack([i1, i2]), torch.stack([l1, l2]), seeds=[11, 12])
    one, _ = t.apply(i1, l1, t.params_from_seed(11))
    two, _ = t.apply(i2, l2, t.params_from_seed(12))
    torch.testing.assert_close(out[0], one)
    torch.testing.assert_close(out[1], two)
    assert torch.equal(out_lab[1], l2)


def test_dtype_follows_input_and_output_in_input_convention(tiny_style_weights):
    img, lab = volume()
    out, out_lab = StyleSwap("tiny_style", labels_are_classes=True, bank=bank()).apply(img.double(), lab.int(), StyleSwapParams(2, True))
    assert out.dtype == torch.float64 and out_lab.dtype == torch.int32
    inside = (img >= -200) & (img <= 300)
    assert out[inside].min() >= -200 - 1e-3 and out[inside].max() <= 300 + 1e-3  # the card's CT window, in HU
    assert torch.equal(out[~inside], img.double()[~inside])  # air keeps its -1000 HU (keep_outside_window)
    raw, _ = StyleSwap("tiny_style", labels_are_classes=True, bank=bank(), keep_outside_window=False).apply(img, lab, StyleSwapParams(2, True))
    assert raw.min() >= -200 - 1e-3 and raw.max() <= 300 + 1e-3  # the generator alone saturates at the floor
    t = StyleSwap("tiny_style", labels_are_classes=True, bank=bank(), deform=True, max_displacement=1.5, control_points=4)
    warped, _ = t.apply(img, lab, StyleSwapParams(5, True))
    # the air corner (>= 3 voxels from the body), deformed with the label, keeps the input's (noisy) air
    assert (warped[:, :2, :2] < -900).all()
    mr = StyleSwap("tiny_style_mr", labels_are_classes=True, bank=None)  # percentile convention: the input's own percentile range
    scaled = img * 3 + 500
    o2, _ = mr.apply(scaled, lab, StyleSwapParams(2, True))
    lo, hi = torch.quantile(scaled.flatten(), torch.tensor([0.01, 0.99]))
    assert o2.min() >= lo - 1e-2 and o2.max() <= hi + 1e-2


def test_3d_volumes_are_rendered_slice_wise_and_consistently(tiny_style_weights):
    img, lab = volume(shape=(20, 18, 5))
    # several generator calls per volume; the generator alone (the restored air carries per-slice noise)
    t = StyleSwap("tiny_style", labels_are_classes=True, bank=bank(), chunk=2, keep_outside_window=False)
    out, _ = t.apply(img, lab, StyleSwapParams(4, True))
    # identical label slices and the same style codes and noise: identical output slices, up to float32
    # rounding of differently sized batches (~1e-7 relative) on an output in HU (a 500 HU window)
    for z in range(1, 5):  # 5 slices, test-only loop
        torch.testing.assert_close(out[..., z], out[..., 0], atol=1e-3, rtol=0)
    assert interslice_ratio(out[0], axis=2) < 1e-3  # no striping across slices
    two_d, _ = t.apply(img[..., 0], lab[..., 0], StyleSwapParams(4, True))  # a 2D slice gives the same image
    torch.testing.assert_close(two_d, out[..., 0], atol=1e-3, rtol=0)
    other_axis, _ = StyleSwap("tiny_style", labels_are_classes=True, bank=bank(), slice_axis=0, keep_outside_window=False).apply(img, lab, StyleSwapParams(4, True))
    assert other_axis.shape == img.shape


def test_the_style_patient_matters_and_missing_classes_use_defaults(tiny_style_weights):
    img, lab = volume()
    t = StyleSwap("tiny_style", labels_are_classes=True, bank=bank())
    a, _ = t.apply(img, lab, StyleSwapParams(1, True, 0, "ctA_z000-003"))
    b, _ = t.apply(img, lab, StyleSwapParams(1, True, 1, "ctA_z010-013"))
    assert not torch.allclose(a, b)
    net, _ = registry.load("tiny_style")
    codes, present = t._bank_codes(net, torch.device("cpu"))
    assert codes.shape == (2, 5, 4)  # 4 labels + body class
    assert present[0].all() and present[1].tolist() == [True, True, True, False, True]  # no class c
    torch.testing.assert_close(codes[1, 3], net.default_codes[3])
    none, _ = StyleSwap("tiny_style", labels_are_classes=True, bank=None).apply(img, lab, StyleSwapParams(1, True))
    assert none.shape == img.shape and not torch.allclose(none, a)


def test_a_bank_with_a_test_case_is_refused(tiny_style_weights):
    img, lab = volume()
    with pytest.raises(LeakageError, match="marked as test"):
        StyleBank([{"image": img, "label": lab, "id": "x", "role": "test"}])
    with pytest.raises(LeakageError, match="overlap"):
        bank(test_cases=["ctA_z012-020"])  # shares slices 12-13 with the second bank case
    assert len(bank(test_cases=["ctA_z096-111", "mrC_z000-009"])) == 2
    with pytest.raises(LeakageError):
        StyleBank([StyleCase("ctA_z096-111", img, lab)], test_cases=["ctA_z096-111"])


def test_bank_from_folder(tmp_path, tiny_style_weights):
    import json

    import nibabel as nib

    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    img, lab = volume()
    folder = tmp_path / "bank"
    folder.mkdir()
    for cid in ("ctA_z000-003", "ctA_z040-043"):
        nib.save(nib.Nifti1Image(img[0].numpy(), affine), str(folder / f"{cid}_image.nii.gz"))
        nib.save(nib.Nifti1Image(lab[0].numpy().astype(np.int16), affine), str(folder / f"{cid}_label.nii.gz"))
    b = StyleBank.from_folder(folder)
    assert b.ids == ("ctA_z000-003", "ctA_z040-043") and b.cases[0].image.shape == (1, 20, 18, 4)
    out, _ = StyleSwap("tiny_style", labels_are_classes=True, bank=b).apply(img, lab, StyleSwapParams(0, True))
    assert out.shape == img.shape
    with pytest.raises(LeakageError):
        StyleBank.from_folder(folder, test_cases=["ctA_z040-050"])
    (folder / "roles.json").write_text(json.dumps({"ctA_z040-043": "test"}))
    with pytest.raises(LeakageError, match="marked as test"):
        StyleBank.from_folder(folder)
    (folder / "roles.json").unlink()
    nib.save(nib.Nifti1Image(lab[0].numpy().astype(np.int16), np.diag([1.0, 1.0, 1.0, 1.0])),
             str(folder / "ctA_z040-043_label.nii.gz"))
    with pytest.raises(ValidationError, match="different affines"):
        StyleBank.from_folder(folder)
    (folder / "ctA_z040-043_label.nii.gz").unlink()
    with pytest.raises(DataError, match="no label file"):
        StyleBank.from_folder(folder)
    nn_dir = tmp_path / "Dataset001"
    (nn_dir / "imagesTr").mkdir(parents=True)
    (nn_dir / "labelsTr").mkdir()
    (nn_dir / "imagesTs").mkdir()
    nib.save(nib.Nifti1Image(img[0].numpy(), affine), str(nn_dir / "imagesTr" / "case_001_0000.nii.gz"))
    nib.save(nib.Nifti1Image(lab[0].numpy().astype(np.int16), affine), str(nn_dir / "labelsTr" / "case_001.nii.gz"))
    nib.save(nib.Nifti1Image(img[0].numpy(), affine), str(nn_dir / "imagesTs" / "case_009_0000.nii.gz"))
    assert StyleBank.from_folder(nn_dir).ids == ("case_001",)  # imagesTs is never read
    with pytest.raises(LeakageError, match="test split"):
        StyleBank.from_folder(nn_dir / "imagesTs")
    # a folder of nnU-Net images only (a scenario's imagesGen): unlabelled cases, for global-code generators
    gen = nn_dir / "imagesGen"
    gen.mkdir()
    nib.save(nib.Nifti1Image(img[0].numpy(), affine), str(gen / "mrC_z010-019_0000.nii.gz"))
    unlabelled = StyleBank.from_folder(gen)
    assert unlabelled.ids == ("mrC_z010-019",) and unlabelled.cases[0].label is None
    out, _ = StyleSwap("tiny_style_mr", labels_are_classes=True, bank=unlabelled).apply(img, lab, StyleSwapParams(0, True))
    assert out.shape == img.shape
    with pytest.raises(ValidationError, match="pools style codes per labelled region"):
        StyleSwap("tiny_style", labels_are_classes=True, bank=unlabelled)
    with pytest.raises(LeakageError):
        StyleBank.from_folder(gen, test_cases=["mrC_z015-015"])
    with pytest.raises(DataError, match="does not exist"):
        StyleBank.from_folder(tmp_path / "missing")


def test_label_map_translates_user_values(tiny_style_weights):
    img, lab = volume()
    user = torch.tensor([0, 10, 20, 30])[lab]
    t_user = StyleSwap("tiny_style", None, label_map={0: 0, 10: 1, 20: 2, 30: 3})
    out_user, lab_out = t_user.apply(img, user, StyleSwapParams(3, True))
    out_plain, _ = StyleSwap("tiny_style", labels_are_classes=True, bank=None).apply(img, lab, StyleSwapParams(3, True))
    torch.testing.assert_close(out_user, out_plain)
    assert torch.equal(lab_out, user)


def test_unlabelled_style_cases_need_a_global_code(tiny_style_weights):
    img, lab = volume()
    unlabelled = StyleBank([{"image": img, "label": None, "id": "mrC_z010-019"}])
    with pytest.raises(ValidationError, match="pools style codes per labelled region"):
        StyleSwap("tiny_style", labels_are_classes=True, bank=unlabelled)
    out, _ = StyleSwap("tiny_style_mr", labels_are_classes=True, bank=unlabelled).apply(img, lab, StyleSwapParams(0, True))
    assert out.shape == img.shape


def test_bad_inputs_raise_clear_errors(tiny_style_weights):
    img, lab = volume()
    t = StyleSwap("tiny_style", labels_are_classes=True, bank=bank())
    p = StyleSwapParams(0, True)
    assert_refuses_bad_image_and_label(t, img, lab, p)
    with pytest.raises(LabelError, match="label_map does not cover"):
        StyleSwap("tiny_style", None, label_map={0: 0, 1: 1}).apply(img, lab, p)
    with pytest.raises(LabelError, match="style case"):
        StyleSwap("tiny_style", labels_are_classes=True, bank=StyleBank([(img, torch.where(lab == 3, 7, lab))]))
    with pytest.raises(LabelError, match="empty"):
        StyleBank([(img, torch.zeros_like(lab))])
    with pytest.raises(ShapeError, match="must match image"):
        StyleBank([(img, lab[..., :2])])
    with pytest.raises(ValidationError, match="NaN"):
        StyleBank([(torch.full_like(img, float("nan")), lab)])
    with pytest.raises(ValidationError, match="at least one"):
        StyleBank([])
    with pytest.raises(ValidationError, match="unique"):
        StyleBank([(img, lab), {"image": img, "label": lab, "id": "case_000"}])
    with pytest.raises(ValidationError, match="StyleBank"):
        StyleSwap("tiny_style", labels_are_classes=True, bank=[(img, lab)])
    with pytest.raises(ValidationError, match="prob"):
        StyleSwap("tiny_style", labels_are_classes=True, bank=None, prob=1.5)
    with pytest.raises(ValidationError, match="seeds"):
        t.apply_batch(img[None], lab[None], seeds=[1, 2])
