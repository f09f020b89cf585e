"""``synthaug train translate`` / ``synthaug eval translate`` on the user's own data, end to end (tiny budgets):
a paired NIfTI folder and a simulator pair other than the four built-ins."""

from __future__ import annotations

import json

import pytest

from synthaug.cli.main import main
from tests.training.test_translate_spec import paired_folders

TINY = ["g_width=4", "g_blocks=1", "g_downsample=1", "unet_widths=[4,8]", "d_width=4", "d_layers=1", "batch_size=2",
        "iterations=4", "validate_every=2", "log_every=2", "sample_every=4", "checkpoint_every=4", "threads=1"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _train_and_eval(tmp_path, capsys, data: str, *extra: str, eval_args: tuple[str, ...] = ()) -> dict:
    run = tmp_path / "run"
    code = main(["train", "translate", "--mode", "pix2pix", "--quiet", "--out", str(run), "--set", "name=mine",
                 f"data={data}", *TINY, *extra])
    assert code == 0, capsys.readouterr().err
    card = json.loads((run / "mine.json").read_text())
    out = tmp_path / "results.json"
    code = main(["eval", "translate", "--weights", str(run / "mine.safetensors"), "--out", str(out),
                 "--markdown", str(tmp_path / "table.md"), *eval_args])
    assert code == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    assert result["data"] == card["training"]["data"]  # the data read back from the card
    trained = {c.partition(":")[0] for c in card["training_cases"]}
    assert trained and not trained & set(result["test_subjects"])
    assert [r["method"] for r in result["methods"]] == ["histogram matching", "mine"]
    assert "| mine |" in (tmp_path / "table.md").read_text()
    return result


def test_cli_trains_and_evaluates_on_a_paired_nifti_folder(tmp_path, capsys):
    src, tgt = paired_folders(tmp_path / "data", 5)
    result = _train_and_eval(tmp_path, capsys, f"folder:{src}:{tgt}", "size=32")
    assert (result["source_modality"], result["target_modality"]) == ("T1w", "PDw") and not result["simulated"]


def test_cli_trains_and_evaluates_simulated_t1w_to_pdw(tmp_path, capsys, phantom_simulator):
    result = _train_and_eval(tmp_path, capsys, "simulated:T1w:PDw", "size=128",
                             eval_args=("--data", "simulated:T1w:PDw", "--min-foreground", "0.4"))
    assert result["simulated"] and result["target_modality"] == "PDw"


def test_cli_bad_data_is_one_line_naming_the_fix(tmp_path, capsys):
    code = main(["train", "translate", "--out", str(tmp_path / "r"), "--set", "data=simulated:T1w:FLAIR"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("synthaug train: error:") and "SequencePreset" in err
    (tmp_path / "empty").mkdir()
    code = main(["eval", "translate", "--data", f"nnunet:{tmp_path / 'empty'}:0:1", "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 2 and "no dataset.json" in err and len(err.strip().splitlines()) == 1
