"""``synthaug predict``: every input is checked before nnU-Net runs, and no prediction is overwritten.

The end-to-end prediction with a trained model runs in tests/benchmark/test_downstream.py (the harness test)."""

import json

import nibabel as nib
import numpy as np
import pytest

from synthaug.benchmark.predict import check_inputs, find_run
from synthaug.errors import DataError, ValidationError


def _nifti(path, data, affine=None):
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), np.eye(4) if affine is None else affine), str(path))
    return path


def _ct(seed=0, shape=(12, 10, 4)):
    rng = np.random.default_rng(seed)
    img = rng.normal(40, 50, shape).astype(np.float32)
    img[:, :2] = -1000.0  # air, as CT in HU has
    return img


def _check(inputs, out, **kw):
    return check_inputs(inputs, out, **{"channel": "CT", "training_spacing": (1.0, 1.0, 1.0), **kw})


def test_a_good_input_passes_and_other_orientations_and_far_spacings_are_noticed(tmp_path):
    ras = _nifti(tmp_path / "ras.nii.gz", _ct())
    lps = _nifti(tmp_path / "lps.nii.gz", _ct(1), np.diag([-1.0, -1.0, 3.5, 1.0]))
    got = _check([ras, lps], tmp_path / "out")
    assert [g.case for g in got] == ["case_0000", "case_0001"]
    assert got[0].warnings == () and got[0].output == tmp_path / "out" / "ras.nii.gz"
    assert got[1].check == tmp_path / "out" / "lps_synthaug_check.json"
    assert any("orientation LPS" in w for w in got[1].warnings)
    assert any("more than 2.0x from the training spacing" in w for w in got[1].warnings)
    # the data handed to nnU-Net is the RAS+ view: flipped back along x and y
    np.testing.assert_array_equal(got[1].data, _ct(1)[::-1, ::-1])
    assert not (tmp_path / "out").exists()  # checking writes nothing


def test_mr_reaching_ct_air_is_noticed_for_an_mr_model(tmp_path):
    got = _check([_nifti(tmp_path / "x.nii.gz", _ct())], tmp_path / "out", channel="T2")
    assert any("CT air" in w for w in got[0].warnings)


def test_bad_inputs_are_refused_by_name_before_anything_runs(tmp_path):
    good = _nifti(tmp_path / "good.nii.gz", _ct())
    with pytest.raises(ValidationError, match="no input image"):
        _check([], tmp_path / "out")
    with pytest.raises(DataError, match="missing.nii.gz: no such file"):
        _check([tmp_path / "missing.nii.gz"], tmp_path / "out")
    (tmp_path / "text.nii.gz").write_text("not an image")
    with pytest.raises(DataError, match="text.nii.gz: not a NIfTI image nibabel can read"):
        _check([tmp_path / "text.nii.gz"], tmp_path / "out")
    four_d = _nifti(tmp_path / "four.nii.gz", np.zeros((4, 4, 4, 2)) - 500)
    with pytest.raises(ValidationError, match="expected a 3D single-channel image"):
        _check([four_d], tmp_path / "out")
    nan = _ct()
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValidationError, match="NaN or infinite"):
        _check([_nifti(tmp_path / "nan.nii.gz", nan)], tmp_path / "out")
    with pytest.raises(ValidationError, match="trained on CT in Hounsfield units.*give CT in HU"):
        _check([_nifti(tmp_path / "norm.nii.gz", np.random.default_rng(0).uniform(0, 1, (8, 8, 4)))], tmp_path / "out")
    (tmp_path / "b").mkdir()
    twin = _nifti(tmp_path / "b" / "good.nii.gz", _ct(2))
    with pytest.raises(ValidationError, match="would both be written as .*good.nii.gz: give inputs with distinct"):
        _check([good, twin], tmp_path / "out")


@pytest.mark.parametrize("existing", ["good.nii.gz", "good_synthaug_check.json"])
def test_an_earlier_prediction_is_never_overwritten(tmp_path, existing):
    good = _nifti(tmp_path / "good.nii.gz", _ct())
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / existing).write_text("earlier")
    with pytest.raises(DataError, match=f"{existing} already exists; synthaug never overwrites a prediction"):
        _check([good], tmp_path / "out")
    assert (tmp_path / "out" / existing).read_text() == "earlier"


def test_find_run_names_the_arms_and_seeds_there_are(tmp_path):
    run = tmp_path / "runs" / "default" / "seed0"
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({"arm": "default", "seed": 0}))
    assert find_run(tmp_path, "default", 0)[0] == {"arm": "default", "seed": 0}
    with pytest.raises(DataError, match=r"Arms there: \['default'\]; seeds of 'default': \['seed0'\]"):
        find_run(tmp_path, "default", 3)
    with pytest.raises(DataError, match="no finished run of arm 'context'"):
        find_run(tmp_path, "context", 0)
