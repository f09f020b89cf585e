"""The test split every recipe path (expansion, the nnU-Net trainer, previews) keeps out of style banks."""

import json

import nibabel as nib
import numpy as np
import pytest

from synthaug.data.scenarios import check_no_overlap
from synthaug.errors import LeakageError
from synthaug.recipes import leakage
from synthaug.recipes.leakage import content_hash


def _raw(tmp_path, cases):
    root = tmp_path / "Dataset990_Split"
    (root / "imagesTs").mkdir(parents=True)
    images = {}
    for i, cid in enumerate(["mrC_z000-009", "mrC_z000-019"]):
        arr = np.full((4, 4, 2), float(i + 1), np.float32)
        nib.save(nib.Nifti1Image(arr, np.eye(4)), str(root / "imagesTs" / f"{cid}_0000.nii.gz"))
        images[cid] = arr
    meta = {"file_ending": ".nii.gz", "labels": {"background": 0, "liver": 1}}
    if cases is not None:
        meta["synthaug"] = {"cases": cases}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root, images


def test_report_only_cases_are_not_held_out_as_in_the_harness(tmp_path):
    """cross-modality: mr_c_lower (role test) is held out; mr_c_all (role report, the slices the generators may
    train on) is reported only, so a bank of the generator slices mrC_z010-019 is allowed and one that reaches
    into the held-out slices is refused."""
    root, images = _raw(tmp_path, [{"id": "mrC_z000-009", "role": "test"}, {"id": "mrC_z000-019", "role": "report"},
                                   {"id": "mrC_z010-019", "role": "generator"}])
    split = leakage.TestSplit.from_raw_dataset(root)
    assert split.ids == ("mrC_z000-009",)
    assert split.content == (content_hash(images["mrC_z000-009"]),)  # the report image's content is not held out
    check_no_overlap(["mrC_z010-019"], split.ids, what="style bank")
    with pytest.raises(LeakageError, match="mrC_z000-009 ~ mrC_z005-012"):
        check_no_overlap(["mrC_z005-012"], split.ids, what="style bank")


def test_without_scenario_roles_every_imagests_case_is_test(tmp_path):
    root, images = _raw(tmp_path, None)
    split = leakage.TestSplit.from_raw_dataset(root)
    assert split.ids == ("mrC_z000-009", "mrC_z000-019")
    assert split.content == tuple(sorted(content_hash(a) for a in images.values()))


def test_a_dataset_json_alone_gives_its_declared_test_cases():
    """What the nnU-Net trainer uses when the raw dataset is not found: the preprocessed dataset.json's test cases."""
    meta = {"synthaug": {"cases": [{"id": "mrC_z000-009", "role": "test"}, {"id": "mrC_z000-019", "role": "report"},
                                   {"id": "ctA_z000-015", "role": "train"}]}}
    assert leakage.TestSplit.from_dataset_json(meta) == leakage.TestSplit(ids=("mrC_z000-009",))
    assert leakage.TestSplit.from_dataset_json({"labels": {}}) == leakage.TestSplit()
