"""``synthaug data`` command line (real sample data from the normal cache, fetched once)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthaug.cli.main import build_parser, main
from synthaug.data.cache import cache_root


def test_data_command_is_registered() -> None:
    args = build_parser().parse_args(["data", "fetch", "--archive-dir", "/somewhere"])
    assert args.command == "data" and args.data_command == "fetch" and args.archive_dir == Path("/somewhere")


def test_data_without_sub_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data"]) == 1
    assert "fetch" in capsys.readouterr().out


def test_fetch_with_a_missing_archive_dir_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["data", "fetch", "--cache-dir", str(tmp_path / "c"), "--archive-dir", str(tmp_path / "nope")]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("synthaug data: error:") and "not a folder" in err
    assert not (tmp_path / "c").exists()


@pytest.mark.data
@pytest.mark.slow
def test_fetch_then_info(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "fetch"]) == 0
    out = capsys.readouterr().out
    assert f"cache: {cache_root()}" in out and "totalsegmentator-2.18.0" in out
    assert main(["data", "info"]) == 0
    out = capsys.readouterr().out
    for name in ("ct_a", "ct_b", "mr_c", "mni", "spine_ct", "spine_mr"):
        assert f"\n{name} " in out
    assert "spine_ct L2, L3, L4; spine_mr C5, C6, C7" in out and "73x73x47" in out and "67x68x52" in out
    assert "tptbox==1.1.0: unclear" in out and "never redistributes" in out
    assert "512x512x20" in out and "0.977x0.977x2" in out
    assert "TotalSegmentator 2.18.0 model predictions, not manual ground truth" in out


def test_benchmark_scenarios_come_from_list_scenarios() -> None:
    from synthaug.data.scenarios import list_scenarios

    for name in list_scenarios():
        args = build_parser().parse_args(["benchmark", "downstream", "--scenario", name, "--work", "w"])
        assert args.scenario == name
    assert "spine-cross-modality" in list_scenarios()


def test_label_ceiling_unknown_scenario_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "label-ceiling", "--scenario", "cross-modalty"]) == 2
    assert "Did you mean 'cross-modality'" in capsys.readouterr().err


@pytest.mark.data
@pytest.mark.slow
def test_label_ceiling_writes_json_and_markdown_with_provenance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, md = tmp_path / "ceiling.json", tmp_path / "ceiling.md"
    argv = ["data", "label-ceiling", "--scenario", "in-domain", "spine-cross-modality", "--out", str(out),
            "--markdown", str(md)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "in-domain / ct_a_heldout (test): mean Dice 1.000 (identical labels: trivial)" in printed
    assert "spine-cross-modality: label-noise ceiling not available" in printed
    payload = json.loads(out.read_text())
    assert {"command", "date", "machine", "git_commit", "scenarios", "whole_volume_native"} <= set(payload)
    assert payload["command"].startswith("synthaug ") and "label-ceiling" in payload["command"]
    assert [s["scenario"] for s in payload["scenarios"]] == ["in-domain", "spine-cross-modality"]
    assert [s["available"] for s in payload["scenarios"]] == [True, False]
    text = md.read_text()
    assert payload["machine"] in text and payload["git_commit"] in text and "not available" in text


@pytest.mark.data
def test_export_spine_scenario_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["data", "export-nnunet", "--scenario", "spine-cross-modality", "--out", str(tmp_path), "--dataset-id", "514"]
    assert main(argv) == 0
    folder = Path(capsys.readouterr().out.strip())
    meta = json.loads((folder / "dataset.json").read_text())
    assert folder.name == "Dataset514_SynthAugSpineCrossModality" and meta["channel_names"] == {"0": "zscore"}
    assert list(meta["labels"])[1:3] == ["vertebral_body", "vertebral_arch"]
    assert sorted(p.name for p in (folder / "imagesTs").iterdir()) == ["spineMr_z000-051_0000.nii.gz"]
    assert len(list((folder / "imagesTr").iterdir())) == 3
    assert main(["data", "export-nnunet", "--scenario", "spine-cross-modality", "--label-space", "superclass",
                 "--out", str(tmp_path / "x"), "--dataset-id", "515"]) == 2  # fmt: skip
    assert "cannot use label_space='superclass'" in capsys.readouterr().err
def test_vocabulary_prints_every_superclass_and_its_organs(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from synthaug.data.vocabulary import SUPERCLASSES, vocabulary_markdown

    assert main(["data", "vocabulary"]) == 0
    out = capsys.readouterr().out
    for i, (name, organs) in enumerate(SUPERCLASSES.items(), start=1):
        line = next(row for row in out.splitlines() if row.split()[:2] == [str(i), name])
        assert all(o in line for o in organs)
    assert "TotalSegmentator" in out and "intervertebral_discs" in out
    assert main(["data", "vocabulary", "--format", "markdown"]) == 0
    assert capsys.readouterr().out == vocabulary_markdown()
    assert main(["data", "vocabulary", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["superclasses"]
    assert {r["name"]: tuple(r["organs"]) for r in rows} == dict(SUPERCLASSES)
