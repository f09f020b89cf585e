"""Issue 18: the built wheel, installed in a fresh virtual environment (not the checkout), runs the README's and
integrations/nnunet/README.md's commands, including the nnU-Net trainer with a shipped recipe.

The fresh venv gets only the wheel (``--no-deps``); its third-party dependencies come from the test
environment's site-packages, appended to ``sys.path`` by a ``.pth`` line (an editable checkout registers itself
through a ``.pth`` file in that folder, which is not executed for a folder added this way, so ``import synthaug``
can only find the wheel).
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.integrations.nnunet import make_raw_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "synthaug", src / "synthaug", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp / "dist"), str(src)], check=True, capture_output=True)
    (wheel,) = (tmp / "dist").glob("synthaug-*.whl")
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    target = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", target, str(wheel)],
                   check=True, capture_output=True)
    # the test environment's third-party packages, after the stdlib and the wheel (a .pth line is appended to
    # sys.path and its folder is not scanned for .pth files, so the checkout's editable finder stays inactive)
    Path(target, "test_environment_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    env.pop("SYNTHAUG_WEIGHTS_PATH", None)
    return py, env, tmp


def _run(wheel_env, *args, cwd=None, timeout=600):
    py, env, tmp = wheel_env
    out = subprocess.run([str(py), *args], capture_output=True, text=True, env=env, cwd=cwd or tmp, timeout=timeout)
    assert out.returncode == 0, f"{args}: {out.stderr[-2000:]}"
    return out.stdout


def _cli(wheel_env, *args, **kw):
    return _run(wheel_env, "-c", "import sys; from synthaug.cli.main import main; sys.exit(main())", *args, **kw)


@pytest.mark.slow
def test_the_wheel_runs_the_readme_commands_and_the_nnunet_trainer(wheel_env):
    py, env, tmp = wheel_env
    where = _run(wheel_env, "-c", "import synthaug; print(synthaug.__file__)")
    assert str(ROOT) not in where and "venv" in where, f"synthaug came from {where}, not the wheel"
    assert "recipe" in _cli(wheel_env, "--help")
    assert "context_ct" in _cli(wheel_env, "recipe", "list")
    recipe = Path(_cli(wheel_env, "recipe", "path", "context_ct").strip())
    assert recipe.is_file() and "venv" in str(recipe)
    trainer_folder = Path(_cli(wheel_env, "nnunet-path").strip())
    assert (trainer_folder / "nnUNetTrainerSynthAug.py").is_file() and "venv" in str(trainer_folder)
    assert "context_ct_a" in _cli(wheel_env, "weights", "list")
    _cli(wheel_env, "weights", "verify")
    # a tiny dataset in the shipped CT generator's vocabulary, checked, previewed and trained with the recipe
    names = ["background", "liver", "spleen", "kidneys", "gastrointestinal", "cardiovascular", "bone", "muscle",
             "other_organs"]
    raw = make_raw_dataset(tmp / "raw", dataset_id=951, n_train=5, n_test=1, shape=(40, 40, 2),
                           spacing=(3.0, 3.0, 3.0))  # the spacing context_ct_a was trained at
    meta = json.loads((raw / "dataset.json").read_text())
    meta["labels"] = {n: i for i, n in enumerate(names[:4])}  # the phantom's values 0..3, named
    (raw / "dataset.json").write_text(json.dumps(meta))
    for case in sorted((raw / "imagesTr").glob("*.nii.gz")) + sorted((raw / "imagesTs").glob("*.nii.gz")):
        _run(wheel_env, "-c", "import sys, nibabel as nib, numpy as np; p = sys.argv[1]; i = nib.load(p); "
             "d = np.asarray(i.dataobj, np.float32); d[:3] = -1000; nib.save(nib.Nifti1Image(d, i.affine), p)",
             str(case))  # air along one border: a CT generator refuses data without air
    assert "ok:" in _cli(wheel_env, "recipe", "check", "context_ct", "--dataset", str(raw))
    _cli(wheel_env, "recipe", "preview", "context_ct", "--dataset", str(raw), "--out", str(tmp / "preview.png"))
    assert (tmp / "preview.png").is_file()
    nn = {**env, "nnUNet_raw": str(tmp / "raw"), "nnUNet_preprocessed": str(tmp / "pre"),
          "nnUNet_results": str(tmp / "res"), "nnUNet_extTrainer": str(trainer_folder), "nnUNet_compile": "false",
          "SYNTHAUG_RECIPE": str(recipe), "SYNTHAUG_NUM_EPOCHS": "1", "SYNTHAUG_ITERS_PER_EPOCH": "2",
          "SYNTHAUG_VAL_ITERS": "1", "nnUNet_n_proc_DA": "0", "nnUNet_def_n_proc": "1"}
    for code in ("from nnunetv2.experiment_planning.plan_and_preprocess_entrypoints import plan_and_preprocess_entry; "
                 "import sys; sys.argv = ['x', '-d', '951', '-c', '2d', '-np', '1', '-npfp', '1']; "
                 "import os; os.environ['nnUNet_n_proc_DA'] = '1'; plan_and_preprocess_entry()",
                 "from nnunetv2.run.run_training import run_training_entry; import sys; "
                 "sys.argv = ['x', '951', '2d', 'all', '-tr', 'nnUNetTrainerSynthAug', '-device', 'cpu']; "
                 "run_training_entry()"):
        out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, env=nn, cwd=tmp, timeout=900)
        assert out.returncode == 0, out.stderr[-3000:]
    logs = list((tmp / "res").rglob("synthaug_log.jsonl"))
    assert logs and json.loads(logs[0].read_text().splitlines()[0])["synthesised"] > 0
