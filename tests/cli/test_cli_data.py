"""``synthaug data`` command line (real sample data from the normal cache, fetched once)."""

from __future__ import annotations

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
def test_fetch_then_info(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "fetch"]) == 0
    out = capsys.readouterr().out
    assert f"cache: {cache_root()}" in out and "totalsegmentator-2.18.0" in out
    assert main(["data", "info"]) == 0
    out = capsys.readouterr().out
    for name in ("ct_a", "ct_b", "mr_c", "mni"):
        assert f"\n{name} " in out
    assert "512x512x20" in out and "0.977x0.977x2" in out
    assert "TotalSegmentator 2.18.0 model predictions, not manual ground truth" in out


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
