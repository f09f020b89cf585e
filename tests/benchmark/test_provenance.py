"""Run provenance: the commit + dirty flag of a checkout, ``--predates`` checks with ``git merge-base
--is-ancestor`` on a throw-away repository, and the report's provenance lines."""

import shutil
import subprocess

import pytest

from synthaug.benchmark.provenance import (
    Commit,
    Predates,
    current_commit,
    is_ancestor,
    parse_predates,
    repo_root,
    resolve_commit,
)
from synthaug.benchmark.report import _provenance_lines, run_provenance
from synthaug.errors import ValidationError

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")


def _git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A linear history: before -> change -> after."""
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@example.org")
    _git(tmp_path, "config", "user.name", "t")
    shas = {}
    for name in ("before", "change", "after"):
        (tmp_path / "f.txt").write_text(name)
        _git(tmp_path, "add", "f.txt")
        _git(tmp_path, "commit", "-q", "-m", name)
        shas[name] = _git(tmp_path, "rev-parse", "HEAD")
    return tmp_path, shas


def test_current_commit_and_dirty_flag(repo):
    root, shas = repo
    c = current_commit(root)
    assert c == Commit(shas["after"], False) and c.label() == shas["after"][:7]
    (root / "f.txt").write_text("edited")
    assert current_commit(root).dirty and current_commit(root).label().endswith("(dirty)")
    (root / "untracked.txt").write_text("x")  # untracked files do not make a run dirty
    (root / "f.txt").write_text("after")
    assert not current_commit(root).dirty
    assert current_commit(root / "missing") is None
    assert Commit.from_dict(c.to_dict()) == c and Commit.from_dict(None) is None


def test_the_package_checkout_is_found():
    root = repo_root()
    assert root is None or (root / "synthaug" / "benchmark" / "provenance.py").exists()


def test_is_ancestor_and_resolve(repo):
    root, shas = repo
    assert is_ancestor(shas["change"], shas["after"], root) is True
    assert is_ancestor(shas["change"], shas["before"], root) is False
    assert is_ancestor("0" * 40, shas["after"], root) is None  # not in the repository: cannot tell
    assert resolve_commit(shas["change"][:7], root) == shas["change"]
    with pytest.raises(ValidationError, match="not in the repository"):
        resolve_commit("deadbee", root)


def test_parse_predates():
    assert parse_predates("5d14e12:keep_outside_window: CT") == Predates("5d14e12", "keep_outside_window: CT")
    for bad in ("5d14e12", ":text", "5d14e12:"):
        with pytest.raises(ValidationError, match="COMMIT:TEXT"):
            parse_predates(bad)


def test_report_lists_commits_and_warns_about_runs_before_a_change(repo):
    root, shas = repo

    def run(arm, seed, sha, dirty=False):
        return {"arm": arm, "seed": seed, "commit": None if sha is None else {"sha": sha, "dirty": dirty}}

    results = [run("default", 0, shas["before"]), run("default", 1, shas["after"]), run("ctx", 0, shas["after"], True),
               run("ctx", 1, None)]
    prov = run_provenance(results, predates=[Predates(shas["change"][:7], "keep_outside_window")], repo=root)
    assert prov["commits_differ"] and prov["commit_unknown"] == ["ctx seed 1"]
    (change,) = prov["predates"]
    assert change["predating"] == ["default seed 0"] and change["unknown"] == ["ctx seed 1"]
    text = "\n".join(_provenance_lines(prov))
    assert "**Warning: the runs come from different commits**" in text
    assert f"**Warning: 1 run(s) predate {shas['change'][:7]} (keep_outside_window):** default seed 0." in text
    assert "commit unknown (1 run" in text and "dirty" in text
    same = run_provenance([run("default", 0, shas["after"])], predates=[Predates(shas["change"], "x")], repo=root)
    assert not same["commits_differ"]
    assert f"Every run includes {shas['change']} (x)." in "\n".join(_provenance_lines(same))
    with pytest.raises(ValidationError, match="not in the repository"):
        run_provenance(results, predates=[Predates("deadbee", "x")], repo=root)
