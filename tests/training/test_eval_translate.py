"""The translation evaluation protocol on phantom data and tiny hand-made weights."""

import math

import pytest
import torch

from synthaug.errors import LeakageError, ValidationError, WeightsError
from synthaug.intensity import IntensityConvention
from synthaug.networks.unet_generator import UNetGenerator
from synthaug.training.eval_translate import (
    evaluate_translation,
    markdown_table,
    ngf_alignment,
    slice_metrics,
)
from synthaug.training.translate_data import TRANSLATION_DATA
from synthaug.weights.card import InferenceSpec, ModelCard
from synthaug.weights.store import save_weights
from tests.training.test_train_translate import fake_translation_data

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture
def paired(monkeypatch):
    data = fake_translation_data()
    monkeypatch.setitem(TRANSLATION_DATA, "fake_t1_t2", lambda: data)
    return data


@pytest.fixture
def unpaired(monkeypatch):
    data = fake_translation_data("fake_ct_mr", paired=False)
    monkeypatch.setitem(TRANSLATION_DATA, "fake_ct_mr", lambda: data)
    return data


def save_fake(folder, name, *, output="linear", dims=2, source="T1w", target="T2w", training_cases=("fake_000:T1w",),
              family="translate", data="fake_t1_t2"):
    """A residual U-Net whose last layer is zero: it returns its input (``linear``) or tanh of it."""
    args = {"in_channels": 1, "out_channels": 1, "spatial_dims": dims, "widths": [4, 8], "residual": True, "output": output}
    net = UNetGenerator(**args)
    with torch.no_grad():
        for p in net.final.parameters():
            p.zero_()
    inference = InferenceSpec(canvas=(32, 32)) if dims == 2 else InferenceSpec(patch=(16, 16, 16))
    card = ModelCard(
        name=name, family=family, architecture="unet_generator", arguments=args, spatial_dims=dims, in_channels=1,
        out_channels=1, intensity=IntensityConvention.percentile(1, 99).to_dict(), source_modality=source,
        target_modality=target, training_cases=tuple(training_cases), inference=inference,
        training={"mode": "resgan", "data": data, "seconds": 12.5, "iterations": 10,
                  "selection": {"best_step": 5}},
    )
    path = folder / f"{name}.safetensors"
    save_weights(net, card, path)
    return path


def _row(result, name):
    return next(r for r in result["methods"] if r["method"] == name)


def test_histogram_matching_is_applied_identically_to_every_method(tmp_path, paired):
    ident = save_fake(tmp_path, "identity")
    squashed = save_fake(tmp_path, "tanh", output="tanh")  # a monotone remap of the identity's output
    on = evaluate_translation([ident, squashed], data="fake_t1_t2", histogram_matching=True)
    assert on["protocol"]["histogram_matching"] is True
    rows = [_row(on, n) for n in ("identity", "tanh", "histogram matching")]
    # Matching a monotone remap of the same image to the same target gives the same image: equal scores.
    for key in ("psnr", "ssim", "mae", "ngf_alignment"):
        for r in rows[1:]:
            assert r[key] == pytest.approx(rows[0][key], abs=1e-4), key
    off = evaluate_translation([ident, squashed], data="fake_t1_t2", histogram_matching=False)
    assert _row(off, "identity")["mae"][0] != pytest.approx(_row(off, "tanh")["mae"][0], abs=1e-3)
    # the phantom target inverts two contrasts: the raw source is a poor T2w, matching helps
    assert _row(on, "identity")["mae"][0] < _row(off, "identity")["mae"][0]


def test_table_lists_every_method_side_by_side(tmp_path, paired):
    result = evaluate_translation([save_fake(tmp_path, "identity")], data="fake_t1_t2")
    assert [r["method"] for r in result["methods"]] == ["histogram matching", "identity"]
    base, ident = result["methods"]
    assert base["training_seconds"] == 0.0 and ident["training_seconds"] == 12.5 and ident["best_step"] == 5
    assert ident["n_slices"] == base["n_slices"] > 2 and result["test_subjects"] == ["fake_005", "fake_006"]
    for r in result["methods"]:
        assert all(len(r[k]) == 2 and all(math.isfinite(v) for v in r[k]) for k in ("psnr", "ssim", "mae", "ngf_alignment", "kid_x1000"))
        assert r["dice"] is None
    table = markdown_table(result)
    assert "| histogram matching | baseline |" in table and "| identity | resgan | 2D |" in table
    assert "histogram matching before scoring: off" in table and "simulated" in table


def test_2d_slices_and_3d_sliding_window_follow_the_same_protocol(tmp_path, paired):
    result = evaluate_translation(
        [save_fake(tmp_path, "id2d"), save_fake(tmp_path, "id3d", dims=3)], data="fake_t1_t2", baseline=False, overlap=0.25
    )
    a, b = result["methods"]
    assert (a["spatial_dims"], b["spatial_dims"]) == (2, 3)
    for key in ("psnr", "ssim", "mae", "ngf_alignment", "kid_x1000"):
        assert a[key] == pytest.approx(b[key], abs=1e-5), key


def test_unpaired_data_reports_faithfulness_distribution_and_label_fidelity(tmp_path, unpaired):
    w = save_fake(tmp_path, "ct2mr", source="CT", target="MR", data="fake_ct_mr")
    case = unpaired.split("test")[0]
    keep = torch.from_numpy(case.mask).float().mean(dim=(0, 1)) >= 0.05
    truth = torch.from_numpy(case.label[:, :, keep.numpy()].astype("int64")).permute(2, 0, 1)
    result = evaluate_translation([w], segmenter=lambda images: truth[: images.shape[0]])
    assert result["data"] == "fake_ct_mr" and result["paired"] is False
    for r in result["methods"]:
        assert r["psnr"] is None and r["ssim"] is None and r["mae"] is None
        assert 0 < r["ngf_alignment"][0] <= 1 and math.isfinite(r["kid_x1000"][0])
        assert r["dice"] == pytest.approx([1.0, 0.0])  # the oracle segmenter returns the source labels
    assert result["protocol"]["kid_real"] == ["fake_006:MR"]
    assert "n/a" in markdown_table(result)


def test_leakage_and_modality_mismatch_are_refused(tmp_path, paired, unpaired):
    leaked = save_fake(tmp_path, "leaky", training_cases=("fake_000:T1w", "fake_006:T2w"))
    with pytest.raises(LeakageError, match="fake_006"):
        evaluate_translation([leaked], data="fake_t1_t2")
    wrong = save_fake(tmp_path, "pd", source="PDw")
    with pytest.raises(ValidationError, match="PDw -> T2w.*T1w -> T2w"):
        evaluate_translation([wrong], data="fake_t1_t2")
    blank = save_fake(tmp_path, "blank", source="")
    with pytest.raises(WeightsError, match="source_modality"):
        evaluate_translation([blank], data="fake_t1_t2")
    ctx = save_fake(tmp_path, "ctx", family="context")
    with pytest.raises(WeightsError, match="'context' model, not a 'translate' one"):
        evaluate_translation([ctx], data="fake_t1_t2")
    with pytest.raises(ValidationError, match="nothing to evaluate"):
        evaluate_translation([], data="fake_t1_t2", baseline=False)
    with pytest.raises(ValidationError, match="weighting"):
        evaluate_translation([], data="fake_t1_t2", weighting="cosine")


def test_slice_metrics_ignore_the_background_and_score_identity_perfectly():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 1, 20, 20, generator=g) * 2 - 1
    mask = torch.zeros(3, 20, 20, dtype=torch.bool)
    mask[:, 4:16, 4:16] = True
    same = slice_metrics(target.clone(), target, mask)
    assert torch.allclose(same["ssim"], torch.ones(3)) and torch.all(same["mae"] == 0) and torch.all(same["psnr"] > 100)
    noisy = target + 0.1 * torch.randn(target.shape, generator=g)
    junk = torch.where(mask[:, None], noisy, torch.full_like(noisy, 5.0))  # garbage outside the mask
    a, b = slice_metrics(noisy, target, mask), slice_metrics(junk, target, mask)
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    assert torch.all(a["psnr"] < 30)


def test_ngf_alignment_is_contrast_invariant_and_zero_for_flat_output():
    g = torch.Generator().manual_seed(0)
    src = torch.nn.functional.avg_pool2d(torch.rand(2, 1, 24, 24, generator=g), 3, 1, 1) * 4 - 2
    mask = torch.ones(2, 24, 24, dtype=torch.bool)
    own = ngf_alignment(src, src, mask)
    torch.testing.assert_close(ngf_alignment(src, -src, mask), own)
    assert torch.all(ngf_alignment(src, torch.zeros_like(src), mask) == 0)
    assert torch.all(ngf_alignment(src, torch.rand(src.shape, generator=g), mask) < own)


def save_fake_segmenter(folder, name="seg_mr", *, modality="MR", labels=("background", "body", "a", "b"),
                        training_cases=("fake_mr_train",), size=32):
    from synthaug.training.train_segmenter import build_segmenter

    torch.manual_seed(0)
    net, args = build_segmenter(len(labels), (4, 8))
    card = ModelCard(
        name=name, family="segmenter", architecture="segmentation_unet", arguments=args, spatial_dims=2,
        in_channels=1, out_channels=len(labels), intensity=IntensityConvention.percentile(1, 99).to_dict(),
        labels=tuple(labels), modality=modality, training_cases=tuple(training_cases),
        inference=InferenceSpec(canvas=(size, size)), training={"config": {"size": size}},
    )
    path = folder / f"{name}.safetensors"
    save_weights(net, card, path)
    return path


def test_segmenter_weights_give_label_fidelity_on_padded_slices(tmp_path, unpaired):
    from synthaug.training.eval_translate import frozen_segmenter
    from synthaug.training.train_segmenter import load_segmenter, segment

    seg = save_fake_segmenter(tmp_path, size=40)  # canvas larger than the 32x32 phantom slices
    judge = frozen_segmenter(seg, unpaired)
    x = torch.rand(3, 1, 32, 30) * 2 - 1
    pred = judge(x)
    assert pred.shape == (3, 32, 30) and pred.dtype == torch.long
    net, _ = load_segmenter(seg)
    padded = torch.nn.functional.pad(x, (5, 5, 4, 4), value=-1.0)  # centre-padded to 40x40 by hand
    assert torch.equal(pred, segment(net, padded)[:, 4:36, 5:35])
    w = save_fake(tmp_path, "ct2mr", source="CT", target="MR", data="fake_ct_mr")
    result = evaluate_translation([w], segmenter=seg)
    assert result["protocol"]["segmenter"] == "seg_mr"
    for r in result["methods"]:
        assert r["dice"] is not None and 0.0 <= r["dice"][0] <= 1.0


def test_segmenter_of_wrong_modality_labels_or_training_is_refused(tmp_path, unpaired):
    from synthaug.training.eval_translate import frozen_segmenter

    with pytest.raises(ValidationError, match="target modality 'MR'"):
        frozen_segmenter(save_fake_segmenter(tmp_path, "seg_ct", modality="CT"), unpaired)
    with pytest.raises(ValidationError, match="predicts labels"):
        frozen_segmenter(save_fake_segmenter(tmp_path, "seg_3", labels=("background", "x", "y")), unpaired)
    with pytest.raises(LeakageError, match="fake_005"):
        frozen_segmenter(save_fake_segmenter(tmp_path, "seg_leak", training_cases=unpaired.case_ids["test"]), unpaired)
    with pytest.raises(ValidationError, match="larger than"):
        frozen_segmenter(save_fake_segmenter(tmp_path, "seg_small", size=16), unpaired)(torch.zeros(1, 1, 32, 32))


def test_shipped_mr_segmenter_judges_ct_to_mr_only():
    from synthaug.training.eval_translate import frozen_segmenter

    judge = frozen_segmenter("segmenter_mr_c_upper", TRANSLATION_DATA["abdomen_ct_mr_upper"]())
    assert judge(torch.full((2, 1, 122, 101), -1.0)).shape == (2, 122, 101)  # CT A slices, padded to 128
    with pytest.raises(ValidationError, match="T2w"):
        frozen_segmenter("segmenter_mr_c_upper", TRANSLATION_DATA["brain_t1_t2"]())
