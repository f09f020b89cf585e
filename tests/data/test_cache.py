"""Cache location, checksums and the atomic directory helper."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from synthaug.data.cache import atomic_directory, cache_root, remove_stale_partials, sha256_file


def test_cache_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SYNTHAUG_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "synthaug"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "synthaug"
    monkeypatch.setenv("SYNTHAUG_CACHE", str(tmp_path / "explicit"))
    assert cache_root() == tmp_path / "explicit"
    assert not (tmp_path / "explicit").exists()  # locating does not create


def test_sha256_file_matches_hashlib_across_chunks(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 + 17)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path, chunk_size=1000) == hashlib.sha256(data).hexdigest()
    assert sha256_file(str(path)) == hashlib.sha256(data).hexdigest()


def test_atomic_directory_moves_into_place_on_success(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "x"
    with atomic_directory(target) as work:
        assert work.name == f"x.partial-{os.getpid()}"
        assert not target.exists()  # never visible half-written
        (work / "f.txt").write_text("ok")
    assert (target / "f.txt").read_text() == "ok"
    assert [p.name for p in target.parent.iterdir()] == ["x"]


def test_atomic_directory_failure_leaves_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "x"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as work:
            (work / "new.txt").write_text("half")
            raise RuntimeError("crash while building")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["x"]


def test_atomic_directory_replaces_or_keeps_an_existing_target(tmp_path: Path) -> None:
    target = tmp_path / "x"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_directory(target) as work:
        (work / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    with atomic_directory(target, keep_existing=lambda p: (p / "new.txt").is_file()) as work:
        (work / "newer.txt").write_text("newer")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["x"]


def test_remove_stale_partials_keeps_running_owners(tmp_path: Path) -> None:
    target = tmp_path / "src-1.0"
    dead = tmp_path / "src-1.0.partial-999999999"
    alive = tmp_path / f"src-1.0.partial-{os.getppid()}"  # our parent process is running
    old = tmp_path / "src-1.0.old-999999999"
    other = tmp_path / "other.partial-999999999"
    for folder in (dead, alive, old, other):
        folder.mkdir()
    removed = remove_stale_partials(target)
    assert sorted(removed) == sorted([dead, old])
    assert alive.exists() and other.exists()
