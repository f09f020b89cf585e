import numpy as np
import pytest
import torch
import torchio as tio
from monai.data import CacheDataset, DataLoader, MetaTensor
from monai.transforms import Compose, EnsureTyped

from synthaug.errors import ValidationError
from synthaug.integrations.monai import ModalityTranslated, RandModalityTranslate
from synthaug.integrations.torchio import RandomModalityTranslate
from synthaug.transforms.modality_translate import ModalityTranslate as Core
from synthaug.transforms.modality_translate import ModalityTranslateParams
from synthaug.weights import registry
from tests.transforms.test_modality_translate import make_tiny_translate_registry, mr_volume

SHIPPED = "translate_brain_pd_t2_resgan"
AFFINE = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0]))


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny_translate_weights(tmp_path, monkeypatch):
    yield make_tiny_translate_registry(tmp_path, monkeypatch)
    registry.clear_cache()


def _item(seed=0, shape=(20, 18, 12)):
    img, lab = mr_volume(shape=shape, seed=seed)
    return {"image": MetaTensor(img, affine=AFFINE, meta={"filename_or_obj": f"pd_{seed}.nii.gz"}),
            "label": MetaTensor(lab.float(), affine=AFFINE)}


def _core(img, **kw):
    return Core(SHIPPED, **kw).apply(img, None, ModalityTranslateParams(0, True))[0]


# --------------------------------------------------------------------------------- MONAI


def test_monai_dict_in_place_keeps_meta_and_labels():
    item = _item()
    out = ModalityTranslated(keys="image", weights=SHIPPED, source="PDw", target="T2w")(item)
    assert isinstance(out["image"], MetaTensor) and out["label"] is item["label"]
    assert out["image"].shape == item["image"].shape and out["image"].dtype == torch.float32
    torch.testing.assert_close(out["image"].affine, AFFINE.double())
    assert out["image"].meta["filename_or_obj"] == "pd_0.nii.gz"
    record = out["image"].meta["synthaug_modality_translate"]
    assert {k: record[k] for k in ("weights", "source", "target", "apply")} == {
        "weights": SHIPPED, "source": "PDw", "target": "T2w", "apply": True}
    assert torch.equal(out["image"].as_tensor(), _core(item["image"].as_tensor()))


def test_monai_dict_new_key_keeps_the_source():
    item = _item()
    out = ModalityTranslated(keys="image", output_key="image_t2w", weights=SHIPPED)(item)
    assert out["image"] is item["image"] and out["label"] is item["label"]
    assert isinstance(out["image_t2w"], MetaTensor) and out["image_t2w"].meta["filename_or_obj"] == "pd_0.nii.gz"
    assert torch.equal(out["image_t2w"].as_tensor(), _core(item["image"].as_tensor()))
    skipped = ModalityTranslated(keys="image", output_key="image_t2w", weights=SHIPPED, prob=0.0)(item)
    assert skipped["image_t2w"] is item["image"] and set(skipped) == {"image", "label", "image_t2w"}
    with pytest.raises(ValidationError, match="one key per input key"):
        ModalityTranslated(keys="image", output_key=("a", "b"), weights=SHIPPED)


def test_monai_prob_zero_is_identity_and_seeded_replay():
    item = _item()
    out = ModalityTranslated(keys="image", weights=SHIPPED, prob=0.0)(item)
    assert out["image"] is item["image"] and out["label"] is item["label"]
    t = ModalityTranslated(keys="image", weights=SHIPPED, prob=0.5)

    def applied(n):
        return [t(item)["image"] is not item["image"] for _ in range(n)]

    t.set_random_state(seed=3)
    a = applied(8)
    t.set_random_state(seed=3)
    assert applied(8) == a and 0 < sum(a) < 8


def test_monai_array_form_numpy_int_and_compose(tiny_translate_weights):
    img, _ = mr_volume()
    arr = RandModalityTranslate(weights=SHIPPED, source="PDw")
    out = arr(img.numpy())
    assert isinstance(out, np.ndarray) and out.shape == img.shape
    np.testing.assert_allclose(out, _core(img).numpy(), atol=1e-5)
    as_int = arr(MetaTensor(img.round().to(torch.int16), affine=AFFINE))
    assert isinstance(as_int, MetaTensor) and as_int.dtype == torch.float32
    pipe = Compose([RandModalityTranslate(weights="tiny_t1_t2_2d", prob=1.0)])
    two_d = pipe(MetaTensor(img, affine=AFFINE))
    assert two_d.shape == img.shape and "synthaug_modality_translate" in two_d.meta


def test_monai_compose_with_cache_dataset():
    pipeline = Compose([EnsureTyped(keys=("image", "label")),
                        ModalityTranslated(keys="image", output_key="t2w", weights=SHIPPED, prob=1.0)])
    pipeline.set_random_state(seed=0)
    ds = CacheDataset([_item(0), _item(1)], transform=pipeline, cache_rate=1.0, progress=False, num_workers=0)
    batch = next(iter(DataLoader(ds, batch_size=2, num_workers=0)))
    assert batch["t2w"].shape == (2, 1, 20, 18, 12) and batch["image"].shape == (2, 1, 20, 18, 12)
    assert torch.equal(batch["label"][0].as_tensor(), _item(0)["label"].as_tensor())


def test_monai_errors():
    with pytest.raises(ValidationError, match="translate PDw -> T2w: source='CT'"):
        ModalityTranslated(keys="image", weights=SHIPPED, source="CT")
    with pytest.raises(ValidationError, match="needs keys \\['t1'\\]"):
        ModalityTranslated(keys="t1", weights=SHIPPED)(_item())
    assert set(ModalityTranslated(keys="t1", weights=SHIPPED, allow_missing_keys=True)(_item())) == {"image", "label"}
    bad = _item()
    bad["image"][0, 2, 2, 2] = float("nan")
    with pytest.raises(ValidationError, match="NaN"):
        ModalityTranslated(keys="image", weights=SHIPPED)(bad)


# --------------------------------------------------------------------------------- TorchIO


def _subject(seed=0):
    img, lab = mr_volume(seed=seed)
    return tio.Subject(image=tio.ScalarImage(tensor=img, affine=AFFINE.numpy()),
                       label=tio.LabelMap(tensor=lab, affine=AFFINE.numpy()))


def test_torchio_in_place_new_image_labels_untouched_and_history_replays():
    subject = _subject()
    t = RandomModalityTranslate(weights=SHIPPED, source="PDw", target="T2w")
    out = t(subject)
    assert out["image"].data.shape == subject["image"].data.shape
    assert torch.equal(out["label"].data, subject["label"].data)
    assert torch.equal(out["image"].data, _core(subject["image"].data))
    np.testing.assert_allclose(out["image"].affine, AFFINE.numpy())
    replay = out.get_composed_history()(_subject())
    assert torch.equal(replay["image"].data, out["image"].data)
    added = RandomModalityTranslate(weights=SHIPPED, output_name="t2w")(subject)
    assert torch.equal(added["image"].data, subject["image"].data) and isinstance(added["t2w"], tio.ScalarImage)
    assert torch.equal(added["t2w"].data, out["image"].data)


def test_torchio_p_zero_and_errors():
    subject = _subject()
    same = RandomModalityTranslate(weights=SHIPPED, p=0.0)(subject)
    assert torch.equal(same["image"].data, subject["image"].data)
    with pytest.raises(ValidationError, match="LabelMap"):
        RandomModalityTranslate(weights=SHIPPED, image_name="label")(subject)
    with pytest.raises(ValidationError, match="no image named 't1'"):
        RandomModalityTranslate(weights=SHIPPED, image_name="t1")(subject)
    with pytest.raises(ValidationError, match="target='CT'"):
        RandomModalityTranslate(weights=SHIPPED, target="CT")
