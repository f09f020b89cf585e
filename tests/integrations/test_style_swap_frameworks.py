import numpy as np
import pytest
import torch
import torchio as tio
from monai.data import CacheDataset, DataLoader, MetaTensor
from monai.transforms import Compose, EnsureTyped

from synthaug.errors import ValidationError
from synthaug.integrations.monai import RandStyleSwap, RandStyleSwapd
from synthaug.integrations.torchio import RandomStyleSwap
from synthaug.weights import registry
from tests.transforms.test_style_swap import bank, make_tiny_style_registry, volume

AFFINE = torch.diag(torch.tensor([3.0, 3.0, 3.0, 1.0]))


@pytest.fixture
def tiny_style_weights(tmp_path, monkeypatch):
    yield make_tiny_style_registry(tmp_path, monkeypatch)
    registry.clear_cache()


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _item(seed=0):
    img, lab = volume(seed=seed)
    names = {"background": 0, "a": 1, "b": 2, "c": 3}
    return {"image": MetaTensor(img, affine=AFFINE), "label": MetaTensor(lab.float(), affine=AFFINE, meta={"labels": names})}


def test_monai_dict_transform_keeps_meta_records_the_style_and_replays(tiny_style_weights):
    t = RandStyleSwapd(weights="tiny_style", bank=bank(), prob=1.0)
    t.set_random_state(seed=4)
    a = t(_item())
    t.set_random_state(seed=4)
    b = t(_item())
    assert isinstance(a["image"], MetaTensor) and isinstance(a["label"], MetaTensor)
    assert torch.equal(a["image"].as_tensor(), b["image"].as_tensor())
    torch.testing.assert_close(a["image"].affine, AFFINE.double())
    assert a["label"].dtype == torch.float32 and torch.equal(a["label"].as_tensor(), _item()["label"].as_tensor())
    record = a["image"].meta["synthaug_style_swap"]
    assert record["style_id"] in ("ctA_z000-003", "ctA_z010-013") and isinstance(record["seed"], int)
    assert record["weights"] == "tiny_style"
    assert not torch.equal(a["image"].as_tensor(), _item()["image"].as_tensor())
    c = t(_item())  # the random state moved on
    assert not torch.equal(a["image"].as_tensor(), c["image"].as_tensor())


def test_monai_prob_zero_is_identity(tiny_style_weights):
    item = _item()
    out = RandStyleSwapd(weights="tiny_style", bank=bank(), prob=0.0)(item)
    assert out["image"] is item["image"] and out["label"] is item["label"]


def test_monai_compose_with_cache_dataset(tiny_style_weights):
    pipeline = Compose([EnsureTyped(keys=("image", "label")),
                        RandStyleSwapd(weights="tiny_style", bank=bank(), prob=1.0, deform=True, max_displacement=2.0)])
    pipeline.set_random_state(seed=0)
    ds = CacheDataset([_item(0), _item(1)], transform=pipeline, cache_rate=1.0, progress=False, num_workers=0)
    batch = next(iter(DataLoader(ds, batch_size=2, num_workers=0)))
    assert batch["image"].shape == (2, 1, 20, 18, 4) and batch["label"].shape == (2, 1, 20, 18, 4)
    labels = batch["label"].as_tensor()
    assert bool((labels == labels.round()).all()) and set(labels.unique().tolist()) <= {0.0, 1.0, 2.0, 3.0}


def test_monai_refuses_mismatched_affines_and_missing_keys(tiny_style_weights):
    item = _item()
    item["label"] = MetaTensor(item["label"].as_tensor(), affine=torch.eye(4))
    with pytest.raises(ValidationError, match="different affines"):
        RandStyleSwapd(weights="tiny_style", bank=bank())(item)
    with pytest.raises(ValidationError, match="seg"):
        RandStyleSwapd(weights="tiny_style", bank=bank(), label_key="seg")(_item())
    t = RandStyleSwapd(weights="tiny_style", bank=bank(), label_key="seg", allow_missing_keys=True)
    assert set(t(_item())) == {"image", "label"}


def test_monai_array_form_on_numpy(tiny_style_weights):
    img, lab = volume()
    t = RandStyleSwap(weights="tiny_style", bank=bank(), labels_are_classes=True)  # numpy: no names
    t.set_random_state(1)
    out, out_lab = t(img.numpy(), lab.numpy())
    assert isinstance(out, np.ndarray) and out.shape == img.shape and out.dtype == np.float32
    assert np.array_equal(out_lab, lab.numpy())


def _subject(seed=0):
    img, lab = volume(seed=seed)
    return tio.Subject(image=tio.ScalarImage(tensor=img, affine=AFFINE.numpy()),
                       label=tio.LabelMap(tensor=lab, labels={"background": 0, "a": 1, "b": 2, "c": 3}, affine=AFFINE.numpy()))


def test_torchio_compose_and_history_replay(tiny_style_weights):
    transform = tio.Compose([tio.RandomFlip(axes=(0,), flip_probability=0.0),
                             RandomStyleSwap(weights="tiny_style", bank=bank(), deform=True, max_displacement=2.0)])
    original = _subject()
    out = transform(original)
    assert not torch.equal(out.image.data, original.image.data)
    assert out.label.data.dtype == original.label.data.dtype
    again = out.get_composed_history()(_subject())
    assert torch.equal(again.image.data, out.image.data)
    assert torch.equal(again.label.data, out.label.data)


def test_torchio_probability_zero_and_affine_mismatch(tiny_style_weights):
    out = RandomStyleSwap(weights="tiny_style", bank=bank(), p=0.0)(_subject())
    assert torch.equal(out.image.data, _subject().image.data)
    s = _subject()
    s.label.affine = np.eye(4)
    with pytest.raises(ValidationError, match="different affines"):
        RandomStyleSwap(weights="tiny_style", bank=bank())(s)
    with pytest.raises(ValidationError, match="max_displacement"):
        RandomStyleSwap(weights="tiny_style", bank=bank(), max_displacement=-1.0)


def test_a_folder_bank_is_held_by_reference_so_transforms_and_subjects_stay_small(tiny_style_weights, tmp_path):
    """Issue 18: a RandStyleSwapd (and a TorchIO subject after a style swap, its history included) pickles
    under 100 kB: the bank read from a folder travels as its folder, not as its volumes."""
    import pickle

    from synthaug.data.nnunet_export import write_nifti

    folder = tmp_path / "bank"
    folder.mkdir()
    for i in range(6):  # six 64x64x32 style cases: ~3 MB of voxels
        img, lab = volume(shape=(64, 64, 32), seed=i)
        write_nifti(folder / f"ctA_z{i:03d}-{i:03d}_image.nii.gz", img[0].numpy(), np.eye(4))
        write_nifti(folder / f"ctA_z{i:03d}-{i:03d}_label.nii.gz", lab[0].numpy().astype(np.int16), np.eye(4))
    t = RandStyleSwapd(weights="tiny_style", bank=str(folder), labels_are_classes=True)
    assert len(t.array.core.bank) == 6
    assert len(pickle.dumps(t)) < 100_000
    copy = pickle.loads(pickle.dumps(t))
    assert copy.array.core.bank.ids == t.array.core.bank.ids
    subject = _subject()
    out = RandomStyleSwap(weights="tiny_style", bank=str(folder))(subject)
    assert len(pickle.dumps(out)) < 100_000 + len(pickle.dumps(_subject()))
