"""``synthaug eval translate`` and ``synthaug eval context``."""

import json

import pytest

from synthaug.cli.main import build_parser, main
from synthaug.training.translate_data import TRANSLATION_DATA
from tests.training.test_eval_translate import save_fake
from tests.training.test_train_translate import fake_translation_data

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_eval_commands_are_registered():
    args = build_parser().parse_args(["eval", "translate", "--weights", "a", "b", "--out", "r.json", "--histogram-matching"])
    assert args.family == "translate" and args.weights == ["a", "b"] and args.histogram_matching
    args = build_parser().parse_args(["eval", "context", "--weights", "w", "--out", "r.json", "--markdown", "t.md"])
    assert args.family == "context" and args.weights == ["w"]


def test_eval_translate_writes_json_and_markdown(tmp_path, monkeypatch, capsys):
    data = fake_translation_data()
    monkeypatch.setitem(TRANSLATION_DATA, "fake_t1_t2", lambda: data)
    w1, w2 = save_fake(tmp_path, "identity"), save_fake(tmp_path, "squash", output="tanh")
    out, md = tmp_path / "res" / "results.json", tmp_path / "res" / "table.md"
    code = main(["eval", "translate", "--weights", str(w1), str(w2), "--data", "fake_t1_t2", "--histogram-matching",
                 "--out", str(out), "--markdown", str(md)])
    assert code == 0
    result = json.loads(out.read_text())
    assert [r["method"] for r in result["methods"]] == ["histogram matching", "identity", "squash"]
    assert result["protocol"]["histogram_matching"] is True
    table = md.read_text()
    assert table.count("\n| ") >= 4 and "histogram matching before scoring: on" in table
    assert "| squash |" in capsys.readouterr().out


def test_eval_translate_errors_are_one_line(tmp_path, monkeypatch, capsys):
    data = fake_translation_data()
    monkeypatch.setitem(TRANSLATION_DATA, "fake_t1_t2", lambda: data)
    w = save_fake(tmp_path, "identity")
    assert main(["eval", "translate", "--weights", str(w), "--data", "fake_t1_t3", "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("synthaug eval: error:") and "Did you mean 'fake_t1_t2'" in err
    assert main(["eval", "translate", "--weights", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "r.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_eval_context_calls_the_context_evaluation(tmp_path, monkeypatch):
    import synthaug.training.eval_context as ec

    calls = []

    def fake_eval(weights, *, data=None, seed=0):
        calls.append((weights, data, seed))
        return {"weights": str(weights)}

    monkeypatch.setattr(ec, "evaluate_context", fake_eval)
    monkeypatch.setattr(ec, "markdown_table", lambda rows: f"| {len(rows)} rows |\n")
    out, md = tmp_path / "ctx.json", tmp_path / "ctx.md"
    assert main(["eval", "context", "--weights", "w1", "w2", "--data", "ct_a", "--out", str(out), "--markdown", str(md)]) == 0
    assert calls == [("w1", "ct_a", 0), ("w2", "ct_a", 0)]
    assert json.loads(out.read_text()) == {"rows": [{"weights": "w1"}, {"weights": "w2"}]}
    assert md.read_text() == "| 2 rows |\n"
