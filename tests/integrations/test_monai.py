import numpy as np
import pytest
import torch
from monai.data import CacheDataset, DataLoader, MetaTensor
from monai.transforms import Compose, EnsureTyped

from synthaug.errors import ValidationError
from synthaug.integrations.monai import RandContextTextureSynth, RandContextTextureSynthd
from tests.transforms.conftest import phantom


def _item(seed=0):
    img, lab = phantom(seed=seed)
    affine = torch.diag(torch.tensor([3.0, 3.0, 3.0, 1.0]))
    names = {"background": 0, "a": 1, "b": 2, "c": 3}  # the label map says what its values mean (meta["labels"])
    return {"image": MetaTensor(img, affine=affine), "label": MetaTensor(lab.float(), affine=affine, meta={"labels": names})}


def test_dict_transform_keeps_meta_and_replays(tiny_weights):
    t = RandContextTextureSynthd(weights="tiny_ct", prob=1.0)
    t.set_random_state(seed=4)
    a = t(_item())
    t.set_random_state(seed=4)
    b = t(_item())
    assert isinstance(a["image"], MetaTensor) and isinstance(a["label"], MetaTensor)
    assert torch.equal(a["image"].as_tensor(), b["image"].as_tensor())
    torch.testing.assert_close(a["image"].affine, _item()["image"].affine)
    assert a["label"].dtype == torch.float32  # container and dtype follow the input
    assert not torch.equal(a["image"].as_tensor(), _item()["image"].as_tensor())


def test_prob_zero_is_identity(tiny_weights):
    t = RandContextTextureSynthd(weights="tiny_ct", prob=0.0)
    item = _item()
    out = t(item)
    assert out["image"] is item["image"] and out["label"] is item["label"]


def test_inside_compose_with_cache_dataset(tiny_weights):
    pipeline = Compose([EnsureTyped(keys=("image", "label")), RandContextTextureSynthd(weights="tiny_ct", prob=1.0)])
    pipeline.set_random_state(seed=0)
    ds = CacheDataset([_item(0), _item(1)], transform=pipeline, cache_rate=1.0, progress=False, num_workers=0)
    batch = next(iter(DataLoader(ds, batch_size=2, num_workers=0)))
    assert batch["image"].shape == (2, 1, 20, 18, 6)
    assert batch["label"].shape == (2, 1, 20, 18, 6)


def test_mismatched_affines_are_refused(tiny_weights):
    item = _item()
    item["label"] = MetaTensor(item["label"].as_tensor(), affine=torch.diag(torch.tensor([1.0, 1.0, 1.0, 1.0])))
    with pytest.raises(ValidationError, match="different affines"):
        RandContextTextureSynthd(weights="tiny_ct")(item)


def test_missing_keys(tiny_weights):
    t = RandContextTextureSynthd(weights="tiny_ct", label_key="seg")
    with pytest.raises(ValidationError, match="seg"):
        t(_item())
    t2 = RandContextTextureSynthd(weights="tiny_ct", label_key="seg", allow_missing_keys=True)
    assert set(t2(_item())) == {"image", "label"}


def test_array_form_on_numpy(tiny_weights):
    img, lab = phantom()
    t = RandContextTextureSynth(weights="tiny_ct", deform=False, labels_are_classes=True)  # numpy: no names
    t.set_random_state(1)
    out, out_lab = t(img.numpy(), lab.numpy())
    assert isinstance(out, np.ndarray) and out.shape == img.shape
    assert np.array_equal(out_lab, lab.numpy())


def test_label_names_from_meta_are_matched_by_name(tiny_weights):
    """Values 1 and 3 swapped in the data, named in meta: the output equals the plain call with class ids."""
    t = RandContextTextureSynthd(weights="tiny_ct", prob=1.0, deform=False)
    t.set_random_state(seed=2)
    plain = t(_item())
    item = _item()
    lab = item["label"].as_tensor()
    swapped = torch.where(lab == 1, 3.0, torch.where(lab == 3, 1.0, lab))
    item["label"] = MetaTensor(swapped, affine=item["label"].affine, meta={"labels": {"background": 0, "a": 3, "b": 2, "c": 1}})
    t.set_random_state(seed=2)
    named = t(item)
    assert torch.equal(named["image"].as_tensor(), plain["image"].as_tensor())
    item["label"] = MetaTensor(swapped, affine=item["label"].affine)  # no names, no opt-in: refused
    with pytest.raises(Exception, match="reads a label map by name"):
        t(item)
