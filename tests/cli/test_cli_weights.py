import json

from synthaug.cli.main import main


def test_list_info_verify(tiny_weights, capsys):
    assert main(["weights", "list"]) == 0
    assert "tiny_ct" in capsys.readouterr().out
    assert main(["weights", "info", "tiny_ct"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["training_cases"] == ["ctA_z000-093"]
    assert main(["weights", "verify", "tiny_ct"]) == 0
    assert "ok" in capsys.readouterr().out


def test_unknown_name_is_a_one_line_error(tiny_weights, capsys):
    assert main(["weights", "info", "tiny_cta"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'tiny_ct'" in err and "Traceback" not in err


def test_publish_renames_attaches_metrics_and_refuses_overwrite(tiny_weights, tmp_path, capsys):
    dest = tmp_path / "reg"
    metrics = tmp_path / "m.json"
    metrics.write_text(json.dumps([{"weights": "tiny_ct", "ssim": [0.9, 0.01]}]))
    src = tiny_weights / "files" / "tiny_ct.safetensors"
    assert main(["weights", "publish", str(src), "--name", "shipped_ct", "--dest", str(dest), "--metrics", str(metrics)]) == 0
    card = json.loads((dest / "cards" / "shipped_ct.json").read_text())
    assert card["name"] == "shipped_ct" and card["metrics"]["ssim"] == [0.9, 0.01]
    from synthaug.weights.store import sha256_file

    assert card["sha256"] == sha256_file(dest / "files" / "shipped_ct.safetensors")
    assert main(["weights", "publish", str(src), "--name", "shipped_ct", "--dest", str(dest)]) == 2
    assert "already exist" in capsys.readouterr().err


def test_markdown_model_card(tiny_weights, capsys):
    assert main(["weights", "info", "tiny_ct", "--markdown"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# Model card: `tiny_ct`")
    assert "| training cases | ctA_z000-093 |" in text
