"""Recipe check and preview against a dataset, the shipped recipe library, and expansion's unsupported keys."""

import json

import pytest
from PIL import Image

from synthaug.errors import DataError, LabelError, LeakageError, ValidationError
from synthaug.recipes import load_shipped, recipe_names, recipe_path
from synthaug.recipes.expand import expand_dataset
from synthaug.recipes.preview import check_recipe, preview_recipe
from tests.integrations.nnunet import make_raw_dataset, write_recipe


def test_every_shipped_recipe_loads_and_names_resolve():
    assert "context_ct" in recipe_names()
    for name in recipe_names():
        r = load_shipped(name)
        assert r.description, f"shipped recipe {name!r} needs a description"
    with pytest.raises(DataError, match="no shipped recipe named 'contxt_ct'.*Did you mean 'context_ct'"):
        recipe_path("contxt_ct")


def test_check_builds_every_transform_by_name_and_refuses_what_the_path_ignores(tiny_weights, tmp_path):
    raw = make_raw_dataset(tmp_path)
    recipe = write_recipe(tmp_path / "r.json")
    ok = check_recipe(recipe, raw)
    assert ok.transforms == ("context_texture",) and ok.weights == ("tiny_ct",)
    # a dataset label the generator does not know: refused with the fix
    meta = json.loads((raw / "dataset.json").read_text())
    meta["labels"]["tumour"] = 4
    (raw / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(LabelError, match=r"\['tumour'\].*label_map"):
        check_recipe(recipe, raw)
    meta["labels"].pop("tumour")
    (raw / "dataset.json").write_text(json.dumps(meta))
    # keys offline expansion would silently drop: an error for --for expand, and in expand itself
    gated = write_recipe(tmp_path / "g.json", targeting={"class_weights": {"a": 2.0}})
    check_recipe(gated, raw, path="trainer")
    with pytest.raises(ValidationError, match=r"sets \['targeting'\], which offline expansion does not apply"):
        check_recipe(gated, raw, path="expand")
    with pytest.raises(ValidationError, match="offline expansion does not apply"):
        expand_dataset(raw, tmp_path / "Dataset902_Out", recipe=gated, per_case=1)
    assert not (tmp_path / "Dataset902_Out").exists() and not list(tmp_path.glob(".Dataset902*"))


def test_check_refuses_a_generator_trained_on_a_test_case(tiny_weights, tmp_path):
    cases = [{"id": "ctA_z000-093", "subject": "ct_a", "role": "test"}]
    raw = make_raw_dataset(tmp_path, scenario_cases=cases)
    with pytest.raises(LeakageError):
        check_recipe(write_recipe(tmp_path / "r.json"), raw)


def test_preview_writes_a_captioned_grid(tiny_weights, tmp_path):
    raw = make_raw_dataset(tmp_path, shape=(24, 20, 3))
    out = preview_recipe(write_recipe(tmp_path / "r.json"), raw, tmp_path / "p.png", cases=2)
    img = Image.open(out)
    assert img.size[0] >= 3 * 160 and img.size[1] > 2 * 24  # 3 columns (label, real, transform), 2 rows + captions
    with pytest.raises(ValidationError, match="not training cases"):
        preview_recipe(write_recipe(tmp_path / "r.json"), raw, tmp_path / "q.png", cases_ids=["case_099"])


def test_check_and_preview_refuse_a_dataset_at_another_spacing_than_the_generator(tmp_path):
    """What the trainer would refuse at its first batch, ``recipe check`` refuses before training starts."""
    import nibabel as nib
    import numpy as np

    for mm in (1.0, 3.0):
        raw = make_raw_dataset(tmp_path / f"{mm:g}mm", n_train=2, n_test=1, shape=(24, 24, 2), spacing=(mm, mm, mm))
        meta = json.loads((raw / "dataset.json").read_text())
        meta["labels"] = {"background": 0, "liver": 1, "spleen": 2, "kidneys": 3}
        (raw / "dataset.json").write_text(json.dumps(meta))
        for case in sorted((raw / "imagesTr").glob("*.nii.gz")):  # air along one border: CT in HU
            img = nib.load(str(case))
            d = np.asarray(img.dataobj, np.float32)
            d[:3] = -1000
            nib.save(nib.Nifti1Image(d, img.affine), str(case))
        if mm == 1.0:
            with pytest.raises(ValidationError, match=r"trained at \[3.0, 3.0\] mm but the input is at \[1.0, 1.0\]"):
                check_recipe("context_ct", raw)
            with pytest.raises(ValidationError, match="Resample the image and label"):
                preview_recipe("context_ct", raw, tmp_path / "p.png", cases=1)
            # expansion refuses before it synthesises anything
            with pytest.raises(ValidationError, match=r"training case 'case_000'.*trained at \[3.0, 3.0\] mm"):
                expand_dataset(raw, tmp_path / "Dataset903_Out", recipe=load_shipped("context_ct"), per_case=1)
            assert not (tmp_path / "Dataset903_Out").exists()
            assert not list(tmp_path.glob(".Dataset903_Out.synthaug-partial/**/*.nii.gz"))
        else:
            assert check_recipe("context_ct", raw).weights == ("context_ct_a",)
