"""Issue 17: the silent failures measured on the earlier main, one test per case (each failed there).

Case 1: foreign label maps read as the generator's classes; MR into a CT generator; wrong spacing.
Case 2: NaN output for a constant input (2D NEC), and the 3D path blaming the user's finite input.
Case 3: leakage outside the harness: a style bank holding a test case, by id or as a renamed copy.
Case 4: weights integrity (tests/weights/, with the embedded tensor hash).
Case 5: expansion resume keeping a corrupted original; a too-small source refused only after synthesis.
Case 6: labels erased by the warp: the vocabulary check ran after the elastic deformation.
"""

import json
import shutil

import pytest
import torch

from synthaug.errors import DataError, LabelError, LeakageError, ValidationError
from synthaug.transforms import ContextTextureSynth, ModalityTranslate, ModalityTranslateParams
from tests.integrations.nnunet import make_raw_dataset
from tests.test_pins import _ct_phantom
from tests.transforms.test_style_swap import make_tiny_style_registry

torch.set_num_threads(1)


def test_case1_a_foreign_tumour_mask_is_refused_not_rendered_as_liver():
    img, lab = _ct_phantom()
    tumour = (lab == 5).long()  # a public 0/1 mask: 1 means "tumour", not the generator's class 1 (liver)
    t = ContextTextureSynth("context_ct_a", deform=False)
    with pytest.raises(LabelError, match="reads a label map by name.*label_names.*label_map.*labels_are_classes"):
        t.apply(img, tumour, t.params_from_seed(0))
    with pytest.raises(LabelError, match=r"\['tumour'\] are not classes of generator 'context_ct_a'.*label_map"):
        ContextTextureSynth("context_ct_a", deform=False, label_names={"background": 0, "tumour": 1})
    # the explicit mapping the error suggests is accepted
    mapped = ContextTextureSynth("context_ct_a", deform=False, label_map={0: "background", 1: "liver"})
    out, _ = mapped.apply(img, tumour, mapped.params_from_seed(0))
    assert torch.isfinite(out).all()


def test_case1_mr_intensities_into_a_ct_generator_are_refused():
    img, lab = _ct_phantom()
    mr = ((img + 1000.0) * 2.0).clamp_min(0)  # an MR-like volume: magnitudes in arbitrary positive units
    t = ContextTextureSynth("context_ct_a", deform=False, labels_are_classes=True)
    with pytest.raises(ValidationError, match="no air-like value and no fat-like one.*check_modality=False"):
        t.apply(mr, lab, t.params_from_seed(0))
    ok = ContextTextureSynth("context_ct_a", deform=False, labels_are_classes=True, check_modality=False)
    assert torch.isfinite(ok.apply(mr, lab, ok.params_from_seed(0))[0]).all()


def test_case1_an_image_at_the_wrong_spacing_is_refused_with_the_resampling_fix():
    from synthaug.transforms.guards import DataInfo

    vol = torch.rand(1, 40, 40, 8) * 800 + 100
    t = ModalityTranslate("translate_brain_t1_t2_nec")  # trained at 2 mm
    with pytest.raises(ValidationError, match=r"trained at \[2.0, 2.0\] mm but the input is at \[1.0, 1.0\].*Spacingd"):
        t.apply(vol, None, ModalityTranslateParams(0, True), info=DataInfo(spacing=(1.0, 1.0, 1.0)))
    out, _ = t.apply(vol, None, ModalityTranslateParams(0, True), info=DataInfo(spacing=(2.0, 2.0, 4.0)))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("weights", ["translate_brain_t1_t2_nec", "translate_brain_pd_t2_resgan"])
@pytest.mark.parametrize("level", [0.0, 350.0, 1234.5])
def test_case2_a_constant_volume_translates_to_finite_values(weights, level):
    vol = torch.full((1, 24, 24, 16), level)
    out, _ = ModalityTranslate(weights).apply(vol, None, ModalityTranslateParams(0, True))
    assert torch.isfinite(out).all()


def _bank_folder(root, raw, cases, *, rename=None):
    root.mkdir()
    for case in cases:
        new = (rename or {}).get(case, case)
        shutil.copy(raw / "imagesTs" / f"{case}_0000.nii.gz", root / f"{new}_image.nii.gz")
        shutil.copy(raw / "labelsTs" / f"{case}.nii.gz", root / f"{new}_label.nii.gz")
    return root


def _style_recipe(path, bank):
    path.write_text(json.dumps({"transforms": [{"name": "style_swap", "probability": 1.0,
                                                "options": {"weights": "tiny_style", "bank": str(bank)}}]}))
    return path


def test_case3_expand_refuses_a_style_bank_holding_a_test_case_by_id_or_content(tmp_path, monkeypatch):
    from synthaug.recipes.expand import expand_dataset

    (tmp_path / "weights").mkdir()
    make_tiny_style_registry(tmp_path / "weights", monkeypatch)
    raw = make_raw_dataset(tmp_path, shape=(20, 18, 2))
    by_id = _bank_folder(tmp_path / "bank_id", raw, ["case_006"])
    with pytest.raises(LeakageError, match="style bank"):
        expand_dataset(raw, tmp_path / "Dataset903_A", recipe=_style_recipe(tmp_path / "a.json", by_id), per_case=1)
    renamed = _bank_folder(tmp_path / "bank_copy", raw, ["case_007"], rename={"case_007": "innocent_case"})
    with pytest.raises(LeakageError, match="same voxels as a test image"):
        expand_dataset(raw, tmp_path / "Dataset904_B", recipe=_style_recipe(tmp_path / "b.json", renamed), per_case=1)
    assert not list(tmp_path.glob("Dataset90[34]*")) and not list(tmp_path.glob(".Dataset90[34]*"))


def test_case3_expansion_manifests_record_the_style_case(tmp_path, monkeypatch):
    from synthaug.recipes.expand import PROVENANCE_DIR, expand_dataset

    (tmp_path / "weights").mkdir()
    make_tiny_style_registry(tmp_path / "weights", monkeypatch)
    raw = make_raw_dataset(tmp_path, shape=(20, 18, 2))
    bank = tmp_path / "bank"
    bank.mkdir()
    for case in ("case_000", "case_001"):  # training cases: allowed
        shutil.copy(raw / "imagesTr" / f"{case}_0000.nii.gz", bank / f"{case}_image.nii.gz")
        shutil.copy(raw / "labelsTr" / f"{case}.nii.gz", bank / f"{case}_label.nii.gz")
    out = expand_dataset(raw, tmp_path / "Dataset905_C", recipe=_style_recipe(tmp_path / "c.json", bank), per_case=1,
                         progress=False, preview=False)
    manifests = [json.loads(p.read_text()) for p in (out / PROVENANCE_DIR).glob("*.json")]
    assert manifests and all(m["params"]["style_id"] in ("case_000", "case_001") for m in manifests)


def test_case5_resume_replaces_a_corrupted_original_and_small_sources_split_leave_one_out(tiny_weights, tmp_path):
    from synthaug.recipes.expand import expand_dataset
    from tests.integrations.nnunet import write_recipe

    raw = make_raw_dataset(tmp_path, shape=(20, 18, 2))
    recipe = write_recipe(tmp_path / "r.json", deform=False)
    calls = []

    def stop_after_first(event, sid):
        calls.append(event)
        if event == "case_done":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        expand_dataset(raw, tmp_path / "Dataset906_D", recipe=recipe, per_case=1, progress=False, hook=stop_after_first)
    partial = tmp_path / ".Dataset906_D.synthaug-partial"
    original = partial / "imagesTr" / "case_002_0000.nii.gz"
    data = bytearray(original.read_bytes())
    data[-20] ^= 0xFF  # same size, other bytes: a stale/corrupted copy
    original.write_bytes(bytes(data))
    out = expand_dataset(raw, tmp_path / "Dataset906_D", recipe=recipe, per_case=1, progress=False)
    assert (out / "imagesTr" / "case_002_0000.nii.gz").read_bytes() == (raw / "imagesTr" / "case_002_0000.nii.gz").read_bytes()

    # 3 originals: leave-one-out folds 0-4, no synthetic copy of a validation case in its fold's training part
    small = make_raw_dataset(tmp_path / "small", n_train=3, shape=(20, 18, 2))
    out = expand_dataset(small, tmp_path / "small" / "Dataset907_E", recipe=recipe, per_case=1, progress=False)
    splits = json.loads((out / "splits_final.json").read_text())
    assert len(splits) == 5 and all(len(f["val"]) == 1 for f in splits)
    assert {f["val"][0] for f in splits} == {"case_000", "case_001", "case_002"}
    for f in splits:
        assert not any(c.startswith(f["val"][0]) for c in f["train"]), "a synthetic copy of the validation case"
    one = make_raw_dataset(tmp_path / "one", n_train=1, shape=(20, 18, 2))
    seen = []
    with pytest.raises(DataError, match="at least 2 originals"):
        expand_dataset(one, tmp_path / "one" / "Dataset908_F", recipe=recipe, per_case=1, progress=False,
                       hook=lambda e, s: seen.append(e))
    assert seen == [], "refused before any synthetic case was made"


def test_case6_an_unknown_small_structure_is_refused_whatever_the_warp(tiny_weights):
    from tests.transforms.conftest import phantom

    img, lab = phantom()
    lab[0, 1:3, 1:3, 0] = 9  # two voxels of a value the generator does not know, at the border
    t = ContextTextureSynth("tiny_ct", deform=True, max_displacement=6.0, labels_are_classes=True)
    for seed in range(20):
        with pytest.raises(LabelError, match=r"\[9\]"):
            t.apply(img, lab, t.params_from_seed(seed))
