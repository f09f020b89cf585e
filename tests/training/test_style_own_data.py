"""``synthaug train style`` from a user's nnU-Net dataset (tiny budgets): paired (each training case a patient,
the consistency segmenter trained on the same dataset) and unpaired (the dataset's labels rendered in the style
of the user's unlabelled target-domain images)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synthaug.cli.main import main
from synthaug.data.nnunet_export import write_nifti
from synthaug.errors import DataError, ValidationError
from synthaug.training.datasets import image_data
from synthaug.training.train_style import StyleConfig, load_style_data
from synthaug.weights.store import read_card

TINY = ["size=32", "crop=0", "style_dim=8", "encoder_widths=[8]", "widths=[16,8]", "z_dim=4", "spade_hidden=8",
        "d_width=8", "d_layers=2", "iterations=3", "batch_size=4", "checkpoint_every=3", "sample_every=3",
        "min_pixels=4", "segmenter_iterations=3", "threads=1"]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _phantom(i: int, levels, rng) -> tuple[np.ndarray, np.ndarray]:
    lab = np.zeros((32, 32, 6), np.uint8)
    yy, xx = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    lab[((yy - 16) ** 2 + (xx - 16) ** 2 < 13**2)] = 1
    lab[6 + i : 14 + i, 8:18] = 2
    lab[18:24, 12 + i : 20 + i] = 3
    img = np.asarray(levels, np.float32)[lab] + rng.normal(0, 10, lab.shape).astype(np.float32)
    return img, lab


@pytest.fixture
def user_ct(tmp_path):
    """Dataset910_MyCT: 5 labelled CT-like cases (background, body, organ, vessel)."""
    root = tmp_path / "Dataset910_MyCT"
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(5):
        img, lab = _phantom(i, [-1000.0, 40.0, 120.0, 250.0], rng)
        write_nifti(root / "imagesTr" / f"my_{i:03d}_0000.nii.gz", img, np.eye(4))
        write_nifti(root / "labelsTr" / f"my_{i:03d}.nii.gz", lab, np.eye(4))
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "body": 1, "organ": 2, "vessel": 3},
        "numTraining": 5, "file_ending": ".nii.gz"}))
    return root


@pytest.fixture
def user_mr_images(tmp_path):
    """An images-only folder of MR-like volumes (the layout of an exported scenario's imagesGen/)."""
    folder = tmp_path / "my_mr"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        img, _ = _phantom(i, [0.0, 300.0, 120.0, 500.0], rng)
        write_nifti(folder / f"mr_{i:03d}_0000.nii.gz", np.abs(img), np.eye(4))
    return folder


def test_paired_style_from_a_user_dataset_uses_its_cases_as_patients(user_ct, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "style", "--quiet", "--out", str(out), "--set", "name=mine", f"data={user_ct}", *TINY]) == 0
    card = read_card(out / "mine.safetensors")
    assert card.labels == ("background", "body", "organ", "vessel") and card.modality == "CT"
    assert card.training_cases == tuple(f"Dataset910_MyCT:my_{i:03d}" for i in range(4))
    assert card.training["heldout_cases"] == ["Dataset910_MyCT:my_004"]
    assert card.training["patients"] == list(card.training_cases)
    seg = read_card(card.training["segmenter"]["weights"])  # the consistency segmenter saw the same cases only
    assert seg.training_cases == card.training_cases and seg.labels == card.labels
    assert "Dataset910_MyCT: 4 training cases as patients" in card.notes


def test_unpaired_style_renders_user_labels_in_the_style_of_user_images(user_ct, user_mr_images, tmp_path):
    cfg = StyleConfig(**{k: json.loads(v) if v[0] in "[0123456789" else v for k, v in (s.split("=") for s in TINY)},
                      mode="unpaired", data=str(user_ct), style_data=str(user_mr_images))
    data = load_style_data(cfg)
    assert data.modality == "MR" and data.source_modality == "CT" and int(data.style.labels.abs().sum()) == 0
    assert "my_mr:mr_003" in data.heldout_cases and "my_mr:mr_003" not in data.training_cases
    assert "Dataset910_MyCT:my_004" in data.heldout_cases
    out = tmp_path / "run"
    assert main(["train", "style", "--quiet", "--out", str(out), "--set", "name=mine_u", "mode=unpaired",
                 f"data={user_ct}", f"style_data={user_mr_images}", "discriminator=patch", *TINY]) == 0
    card = read_card(out / "mine_u.safetensors")
    assert card.modality == "MR" and card.source_modality == "CT"
    assert {"Dataset910_MyCT:my_000", "my_mr:mr_000"} <= set(card.training_cases)
    assert not set(card.training_cases) & set(card.training["heldout_cases"])


def test_a_single_style_volume_is_cut_along_z(user_mr_images, tmp_path):
    single = tmp_path / "one"
    single.mkdir()
    (single / "mr_000_0000.nii.gz").write_bytes((user_mr_images / "mr_000_0000.nii.gz").read_bytes())
    images = image_data(single)
    assert images.training_cases == ("one:mr_000_z000-004",) and images.heldout_cases == ("one:mr_000_z005-005",)
    assert images.train[0].image.shape[2] == 5 and images.heldout[0].image.shape[2] == 1


def test_bad_style_data_names_the_fix(tmp_path):
    with pytest.raises(ValidationError, match="nnU-Net raw dataset folder"):
        StyleConfig(data=str(tmp_path))
    with pytest.raises(ValidationError, match="imagesGen"):
        StyleConfig(mode="unpaired", style_data=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no style cases"):
        image_data(tmp_path / "empty")
