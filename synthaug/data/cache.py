"""Where the open sample data lives on disk, checksums, and atomic directory creation.

The cache root is ``$SYNTHAUG_CACHE`` if set, else ``$XDG_CACHE_HOME/synthaug``, else
``~/.cache/synthaug``. Folders in it are built under ``<target>.partial-<pid>`` and renamed into
place only when complete, so a crash never leaves a half-written target behind; leftovers of
crashed processes are removed by :func:`remove_stale_partials`.

>>> from synthaug.data.cache import cache_root
>>> cache_root().name
'synthaug'
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["content_hash", "cache_root", "sha256_file", "atomic_directory", "remove_stale_partials"]

_PARTIAL = ".partial-"
_OLD = ".old-"
# A leftover whose owner cannot be checked (Windows) is removed only when older than this.
_STALE_AFTER_SECONDS = 24 * 3600.0


def cache_root() -> Path:
    """The synthaug cache folder (not created here).

    ``$SYNTHAUG_CACHE`` wins, then ``$XDG_CACHE_HOME/synthaug``, then ``~/.cache/synthaug``.
    """
    explicit = os.environ.get("SYNTHAUG_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "synthaug"
    return Path.home() / ".cache" / "synthaug"


def sha256_file(path: str | os.PathLike[str], *, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftover from an earlier, failed attempt
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_partials(target: str | os.PathLike[str]) -> list[Path]:
    """Remove ``<target>.partial-<pid>`` / ``<target>.old-<pid>`` left by processes that died.

    Folders of processes still running are kept (they may be building right now). Returns the
    removed paths.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    removed = []
    now = time.time()
    for path in target.parent.iterdir():
        for marker in (_PARTIAL, _OLD):
            prefix = target.name + marker
            if not path.name.startswith(prefix):
                continue
            pid_text = path.name[len(prefix) :]
            alive = pid_text.isdigit() and _pid_alive(int(pid_text))
            try:
                old = now - path.lstat().st_mtime > _STALE_AFTER_SECONDS
            except OSError:
                continue
            if not alive or old:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


@contextmanager
def atomic_directory(
    target: str | os.PathLike[str],
    *,
    keep_existing: Callable[[Path], bool] | None = None,
) -> Iterator[Path]:
    """Build a folder under a temporary name and move it to ``target`` only on success.

    Yields ``<target>.partial-<pid>`` (empty). If the ``with`` body raises, the partial folder is
    removed and ``target`` is left untouched. On success an existing ``target`` is replaced, unless
    ``keep_existing(target)`` says it is good (e.g. another process finished the same fetch first),
    in which case the new copy is discarded.

    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as root:
    ...     with atomic_directory(pathlib.Path(root) / "x") as work:
    ...         _ = (work / "a.txt").write_text("done")
    ...     print((pathlib.Path(root) / "x" / "a.txt").read_text())
    done
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}{_PARTIAL}{os.getpid()}")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir()
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _commit(partial, target, keep_existing)


def _commit(partial: Path, target: Path, keep_existing: Callable[[Path], bool] | None) -> None:
    old: Path | None = None
    if target.exists():
        if keep_existing is not None and keep_existing(target):
            shutil.rmtree(partial, ignore_errors=True)
            return
        # A directory can only be renamed over an empty one: move the old one aside first and
        # delete it only once the new one is in place.
        old = target.with_name(f"{target.name}{_OLD}{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        try:
            os.replace(target, old)
        except FileNotFoundError:  # someone else moved it meanwhile
            old = None
    try:
        os.replace(partial, target)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        if not target.is_dir():  # not a lost race with another process: a real failure
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def content_hash(array: Any) -> str:
    """sha256 of an image's voxels as float32 (shape included): independent of file name, format and dtype."""
    a = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
    while a.ndim > 1 and a.shape[0] == 1:  # a channel axis (1, X, Y, Z) does not make another image
        a = a[0]
    h = hashlib.sha256(str(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()
