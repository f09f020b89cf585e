from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from synthaug.cli.main import main


@pytest.mark.slow
def test_demo_writes_nifti_and_preview_without_overwriting(tmp_path: Path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out.resolve()) in printed
    assert (out / "preview.png").is_file()
    t1 = nib.load(out / "simulated_brain_T1w.nii.gz")
    assert t1.shape == nib.load(out / "simulated_brain_label.nii.gz").shape
    for nii in out.glob("*_context_texture_image.nii.gz"):
        img = nib.load(nii)
        lab = nib.load(str(nii).replace("_image", "_label"))
        assert img.shape == lab.shape and np.allclose(img.affine, lab.affine)
        assert np.isfinite(np.asarray(img.dataobj)).all()
    t2 = nib.load(out / "simulated_brain_T1w_to_T2w.nii.gz")  # the shipped T1w -> T2w translator on the same grid
    assert t2.shape == t1.shape and np.allclose(t2.affine, t1.affine) and np.isfinite(np.asarray(t2.dataobj)).all()
    # A second run never touches the first output: it picks a new folder.
    assert main(["demo", "--out", str(out)]) == 0
    assert (tmp_path / "demo-1" / "preview.png").is_file()
    assert not list(tmp_path.glob(".demo*partial*"))
