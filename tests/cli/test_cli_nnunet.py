"""``synthaug nnunet-path`` and ``synthaug expand``."""

import json
from pathlib import Path

import pytest

import synthaug.integrations.nnunet as integration
from synthaug.cli.main import build_parser, main
from tests.integrations.nnunet import make_raw_dataset, write_recipe


def test_commands_are_registered():
    help_text = build_parser().format_help()
    assert "nnunet-path" in help_text and "expand" in help_text


def test_nnunet_path_prints_the_trainer_folder_inside_the_package(capsys):
    assert main(["nnunet-path"]) == 0
    folder = capsys.readouterr().out.strip()
    thin = integration.trainer_folder() / f"{integration.TRAINER_NAME}.py"
    assert folder == str(integration.trainer_folder()) and thin.is_file()
    assert integration.trainer_folder().parent == Path(integration.__file__).parent  # package data, not the checkout
    assert "from synthaug.integrations.nnunet.trainer import nnUNetTrainerSynthAug" in thin.read_text()


@pytest.mark.nnunet
@pytest.mark.slow
def test_nnunet_finds_the_trainer_through_nnUNet_extTrainer(monkeypatch, capsys):
    monkeypatch.setenv("nnUNet_extTrainer", str(integration.trainer_folder()))
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from synthaug.integrations.nnunet.trainer import nnUNetTrainerSynthAug

    assert recursive_find_trainer_class_by_name("nnUNetTrainerSynthAug") is nnUNetTrainerSynthAug


def test_expand_cli_writes_then_refuses_to_overwrite(tmp_path, tiny_weights, capsys):
    src = make_raw_dataset(tmp_path / "raw", n_train=5, n_test=1, shape=(24, 24, 1))
    recipe = write_recipe(tmp_path / "recipe.json")
    out = tmp_path / "raw" / "Dataset990_Cli"
    args = ["expand", "--dataset", str(src), "--out", str(out), "--recipe", str(recipe), "--per-case", "1",
            "--seed", "2", "--device", "cpu", "--quiet", "--no-preview"]
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 10
    assert not (out / "synthaug_preview.png").exists()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "never overwrites" in err and "Traceback" not in err


def test_expand_cli_bad_inputs_are_one_line_errors(tmp_path, tiny_weights, capsys):
    src = make_raw_dataset(tmp_path / "raw", n_train=5, n_test=1, shape=(24, 24, 1))
    base = ["expand", "--dataset", str(src), "--out", str(tmp_path / "Dataset991_X"), "--per-case", "1", "--quiet"]
    assert main(base + ["--recipe", str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"transforms": [{"name": "context_textur", "probability": 0.5}]}))
    assert main(base + ["--recipe", str(bad)]) == 2
    assert "Did you mean 'context_texture'" in capsys.readouterr().err
    recipe = write_recipe(tmp_path / "recipe.json", weights="no_such_weights")
    assert main(base + ["--recipe", str(recipe)]) == 2
    assert "no weights named 'no_such_weights'" in capsys.readouterr().err
    # a file where the output's parent folder must be: the file system's refusal, one line with the path, exit 1
    (tmp_path / "afile").write_text("x")
    recipe = write_recipe(tmp_path / "recipe.json")
    assert main([*base[:4], str(tmp_path / "afile" / "Dataset992_X"), *base[5:], "--recipe", str(recipe)]) == 1
    err = capsys.readouterr().err
    assert f"Not a directory: {tmp_path / 'afile'}" in err and "is a folder where one is expected" in err
    assert "Traceback" not in err and (tmp_path / "afile").read_text() == "x"
