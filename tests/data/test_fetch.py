"""ensure_source mechanics on a tiny fake archive (no network), and the pip failure message."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import synthaug.data.fetch as fetch_module
from synthaug.data.fetch import ensure_source, get_source, pip_download, verify_source_folder
from synthaug.data.sources import (
    CLASS_MAP_FILE,
    CT_DICOM_LABEL,
    MR_LABEL,
    SOURCES,
    SPINE_MR_SUBREGIONS,
    TOTALSEG_IMAGE_FILES,
    Source,
    SourceFile,
)
from synthaug.errors import DataError, FetchError, ValidationError

from .conftest import NEEDED, UNNEEDED, FakeSource, build_fake_source

DEAD_PID = 999_999_999  # above any pid_max: no such process


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_first_fetch_extracts_only_the_needed_files(fake: FakeSource, tmp_path: Path) -> None:
    calls: list[str] = []
    folder = ensure_source(fake.source, cache_dir=tmp_path / "cache", downloader=fake.downloader(calls))
    assert calls == ["fake"]
    assert folder == tmp_path / "cache" / "fake-1.0"
    assert _files(folder) == set(NEEDED)
    for path, data in NEEDED.items():
        assert (folder / path).read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["fake-1.0"]  # no partial left


def test_second_call_needs_no_network(fake: FakeSource, tmp_path: Path, no_network: list[str]) -> None:
    first = ensure_source(fake.source, cache_dir=tmp_path, downloader=fake.downloader())
    again = ensure_source(fake.source, cache_dir=tmp_path)  # default downloader now fails
    assert again == first
    assert no_network == []


def test_without_cache_and_network_the_fetch_error_surfaces(
    fake: FakeSource, tmp_path: Path, no_network: list[str]
) -> None:
    with pytest.raises(FetchError, match="simulated: no network"):
        ensure_source(fake.source, cache_dir=tmp_path)
    assert no_network == ["fake"]
    assert not (tmp_path / "fake-1.0").exists()


@pytest.mark.parametrize("damage", ["modify", "delete", "truncate"])
def test_corrupted_cache_is_detected_and_fetched_again(fake: FakeSource, tmp_path: Path, damage: str) -> None:
    calls: list[str] = []
    folder = ensure_source(fake.source, cache_dir=tmp_path, downloader=fake.downloader(calls))
    victim = folder / "data/nested/label.bin"
    if damage == "modify":
        data = victim.read_bytes()
        victim.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])  # one flipped byte, same size
    elif damage == "delete":
        victim.unlink()
    else:
        victim.write_bytes(b"")
    assert verify_source_folder(fake.source, folder) != []
    assert ensure_source(fake.source, cache_dir=tmp_path, downloader=fake.downloader(calls)) == folder
    assert calls == ["fake", "fake"]
    assert victim.read_bytes() == NEEDED["data/nested/label.bin"]
    assert verify_source_folder(fake.source, folder) == []


def test_crash_leftovers_are_recovered(fake: FakeSource, tmp_path: Path) -> None:
    # A crashed earlier run: its partial folder, and a half-copied target (e.g. copied by hand).
    cache = tmp_path / "cache"
    stale = cache / f"fake-1.0.partial-{DEAD_PID}"
    (stale / "data").mkdir(parents=True)
    (stale / "data/image.txt").write_bytes(b"half")
    target = cache / "fake-1.0" / "data"
    target.mkdir(parents=True)
    (target / "image.txt").write_bytes(NEEDED["data/image.txt"])
    folder = ensure_source(fake.source, cache_dir=cache, downloader=fake.downloader())
    assert verify_source_folder(fake.source, folder) == []
    assert not stale.exists()
    assert sorted(p.name for p in cache.iterdir()) == ["fake-1.0"]


def test_failure_during_extraction_leaves_no_target(tmp_path: Path) -> None:
    good = build_fake_source(tmp_path / "a")
    wrong_file = replace(good.source, files=(SourceFile("data/image.txt", "0" * 64),))
    with pytest.raises(FetchError, match="does not hold the pinned file"):
        ensure_source(wrong_file, cache_dir=tmp_path / "cache", downloader=good.downloader())
    assert list((tmp_path / "cache").iterdir()) == []


def test_wrong_archive_checksum_raises_a_helpful_fetch_error(fake: FakeSource, tmp_path: Path) -> None:
    other = build_fake_source(tmp_path / "other", kind="tar", needed={"data/image.txt": b"another release\n"})
    pinned = replace(fake.source, archive_sha256="f" * 64)
    with pytest.raises(FetchError) as info:
        ensure_source(pinned, cache_dir=tmp_path / "cache", archive=other.archive)
    message = str(info.value)
    assert "f" * 64 in message and "not the pinned release" in message
    assert "pip download fake==1.0 --no-deps" in message
    assert not (tmp_path / "cache" / "fake-1.0").exists()


def test_local_archive_file_or_folder_is_used_instead_of_pip(
    fake: FakeSource, tmp_path: Path, no_network: list[str]
) -> None:
    ensure_source(fake.source, cache_dir=tmp_path / "c1", archive=fake.archive)
    ensure_source(fake.source, cache_dir=tmp_path / "c2", archive=fake.archive.parent)
    assert no_network == []
    with pytest.raises(FetchError, match="no file"):
        ensure_source(fake.source, cache_dir=tmp_path / "c3", archive=tmp_path / "missing")


def test_archive_dir_environment_variable(
    fake: FakeSource, tmp_path: Path, no_network: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTHAUG_ARCHIVE_DIR", str(fake.archive.parent))
    folder = ensure_source(fake.source, cache_dir=tmp_path / "cache")
    assert verify_source_folder(fake.source, folder) == []
    assert no_network == []


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_path_traversal_members_are_refused(kind: str, tmp_path: Path) -> None:
    evil = build_fake_source(
        tmp_path / "archives", kind=kind, needed={"../../escaped.txt": b"owned\n"}, extra={}
    )
    with pytest.raises(FetchError, match="outside the cache folder"):
        ensure_source(evil.source, cache_dir=tmp_path / "cache" / "deep", downloader=evil.downloader())
    assert not any(p.name == "escaped.txt" for p in tmp_path.rglob("*"))


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_link_members_are_refused(kind: str, tmp_path: Path) -> None:
    evil = build_fake_source(tmp_path / "archives", kind=kind, symlinks={"data/link.txt": "/etc/passwd"})
    with pytest.raises(FetchError, match="not a regular file"):
        ensure_source(evil.source, cache_dir=tmp_path / "cache", downloader=evil.downloader())
    assert not (tmp_path / "cache" / "fake-1.0").exists()


def test_archive_lacking_a_needed_member(tmp_path: Path) -> None:
    fake = build_fake_source(tmp_path / "a")
    more = replace(fake.source, files=(*fake.source.files, SourceFile("data/absent.txt", "0" * 64)))
    with pytest.raises(FetchError, match="lacks 1 needed file"):
        ensure_source(more, cache_dir=tmp_path / "cache", downloader=fake.downloader())


def test_unneeded_members_are_never_written(tmp_path: Path) -> None:
    fake = build_fake_source(tmp_path / "a")
    folder = ensure_source(fake.source, cache_dir=tmp_path / "cache", downloader=fake.downloader())
    assert not any((folder / p).exists() for p in UNNEEDED)


def test_failed_pip_download_explains_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen.append(command)
        return subprocess.CompletedProcess(
            command,
            1,
            "",
            "ERROR: Could not find a version that satisfies the requirement totalsegmentator==2.18.0",
        )

    monkeypatch.setattr(fetch_module.subprocess, "run", fake_run)
    source = SOURCES["totalsegmentator"]
    with pytest.raises(FetchError) as info:
        pip_download(source, tmp_path)
    assert seen[0][:4] == [sys.executable, "-m", "pip", "download"]
    assert seen[0][4:8] == ["totalsegmentator==2.18.0", "--no-deps", "--no-binary", ":all:"]
    assert seen[0][-2:] == ["-d", str(tmp_path)]
    message = str(info.value)
    for hint in (
        "Could not find a version",
        "package index",
        "proxy",
        "pip download totalsegmentator==2.18.0 --no-deps --no-binary :all:",
        "--archive-dir",
        "SYNTHAUG_ARCHIVE_DIR",
        source.archive_sha256,
    ):
        assert hint in message


def test_pip_without_the_archive_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(
        fetch_module.subprocess, "run", lambda c, **k: subprocess.CompletedProcess(c, 0, "", "")
    )
    with pytest.raises(FetchError, match="is not in"):
        pip_download(SOURCES["nilearn"], tmp_path)


def test_wheel_source_uses_only_binary() -> None:
    assert SOURCES["nilearn"].pip_args == ("nilearn==0.14.1", "--no-deps", "--only-binary", ":all:")
    assert SOURCES["totalsegmentator"].folder == "totalsegmentator-2.18.0"


def test_unknown_source_name_suggests_the_closest() -> None:
    with pytest.raises(ValidationError, match="Did you mean 'nilearn'"):
        get_source("nilearn2")


def test_fetch_errors_are_data_errors() -> None:
    assert issubclass(FetchError, DataError) and issubclass(FetchError, OSError)


def test_pinned_records_are_complete() -> None:
    ts = SOURCES["totalsegmentator"]
    dicom = [f for f in ts.files if "/example_ct_dicom/" in f.path]
    assert len(dicom) == 20 and len({f.path for f in dicom}) == 20
    for source in SOURCES.values():
        assert all(len(f.sha256) == 64 and int(f.sha256, 16) >= 0 for f in source.files)
        assert len({f.sha256 for f in source.files}) == len(source.files)


@pytest.mark.data
def test_real_sources_are_verified_in_the_cache(data_cache: Path) -> None:
    for source in SOURCES.values():
        assert verify_source_folder(source, data_cache / source.folder) == []


@pytest.mark.data
@pytest.mark.slow
def test_real_pip_download_of_the_small_wheel(tmp_path: Path) -> None:
    folder = ensure_source("nilearn", cache_dir=tmp_path)
    assert verify_source_folder("nilearn", folder) == []


def test_unwritable_cache_is_a_data_error(fake: FakeSource, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match="SYNTHAUG_CACHE"):
        ensure_source(fake.source, cache_dir=blocker / "cache", downloader=fake.downloader())


def test_unreadable_archive_with_the_pinned_checksum_is_a_fetch_error(tmp_path: Path) -> None:
    bogus = tmp_path / "fake-1.0.tar.gz"
    bogus.write_bytes(b"this is not a tar archive at all")
    fake = build_fake_source(tmp_path / "a")
    source = replace(fake.source, archive_sha256=hashlib.sha256(bogus.read_bytes()).hexdigest())
    with pytest.raises(FetchError, match="not a readable sdist archive"):
        ensure_source(source, cache_dir=tmp_path / "cache", archive=bogus)


# --- the spine (tptbox) and second TotalSegmentator release sources -------------------------------


def test_tptbox_record_pins_the_wheel_and_exactly_six_members() -> None:
    tpt = SOURCES["tptbox"]
    assert tpt.kind == "wheel" and tpt.requirement == "tptbox==1.1.0" and tpt.folder == "tptbox-1.1.0"
    assert tpt.pip_args == ("tptbox==1.1.0", "--no-deps", "--only-binary", ":all:")
    assert tpt.archive == "tptbox-1.1.0-py3-none-any.whl" and len(tpt.archive_sha256) == 64
    assert sorted(f.path.rsplit("/", 1)[-1] for f in tpt.files) == [
        "sub-ct_label-22_ct.nii.gz",
        "sub-ct_seg-subreg_label-22_msk.nii.gz",
        "sub-ct_seg-vert_label-22_msk.nii.gz",
        "sub-mri_label-6_T2w.nii.gz",
        "sub-mri_seg-subreg_label-6_msk.nii.gz",
        "sub-mri_seg-vert_label-6_msk.nii.gz",
    ]
    assert all(tpt.member(f).startswith("TPTBox/tests/sample_") for f in tpt.files)
    for fact in ("Apache-2.0", "Proprietary", "origin of the scans is not stated", "never redistributes"):
        assert fact in tpt.licence


def test_totalsegmentator_2_10_reuses_the_2_18_image_digests() -> None:
    old, new = SOURCES["totalsegmentator_2.10"], SOURCES["totalsegmentator"]
    assert old.folder == "totalsegmentator-2.10.0" and old.member_prefix == "totalsegmentator-2.10.0/"
    assert old.pip_args[:4] == ("totalsegmentator==2.10.0", "--no-deps", "--no-binary", ":all:")
    assert {f.path for f in old.files} == {f.path for f in new.files}  # same member names
    for path in TOTALSEG_IMAGE_FILES:  # a 2.10.0 image that differs from 2.18.0 fails the fetch
        assert old.file(path) == new.file(path)
    for path in (CT_DICOM_LABEL, MR_LABEL, CLASS_MAP_FILE):  # the older release's own labels and class maps
        assert old.file(path).sha256 != new.file(path).sha256


def test_source_folder_is_project_and_version() -> None:
    assert replace(SOURCES["nilearn"], name="other_key").folder == "nilearn-0.14.1"
    assert replace(SOURCES["nilearn"], requirement="nilearn").folder == "nilearn"


def test_the_repository_holds_none_of_the_fetched_data() -> None:
    root = Path(__file__).resolve().parents[2]
    names = {Path(f.path).name for s in SOURCES.values() for f in s.files}
    found = [p for folder in ("synthaug", "tests", "benchmarks", "docs", "integrations", "scripts")
             if (root / folder).is_dir() for p in (root / folder).rglob("*") if p.name in names]  # fmt: skip
    assert found == []


@pytest.mark.data
@pytest.mark.slow
def test_corrupted_tptbox_cache_is_fetched_again_with_pip(
    data_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tpt = SOURCES["tptbox"]
    shutil.copytree(data_cache / tpt.folder, tmp_path / tpt.folder)
    victim = tmp_path / tpt.folder / SPINE_MR_SUBREGIONS
    data = victim.read_bytes()
    victim.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    assert verify_source_folder(tpt, tmp_path / tpt.folder) == [f"sha256 mismatch for {SPINE_MR_SUBREGIONS}"]
    calls: list[str] = []

    def counted(source: Source, destination: Path) -> Path:
        calls.append(source.name)
        archive = pip_download(source, destination)  # the package's own pip fetch
        assert hashlib.sha256(archive.read_bytes()).hexdigest() == tpt.archive_sha256
        return archive

    monkeypatch.setattr(fetch_module, "download_archive", counted)
    monkeypatch.delenv("SYNTHAUG_ARCHIVE_DIR", raising=False)
    assert ensure_source("tptbox", cache_dir=tmp_path) == tmp_path / tpt.folder
    assert calls == ["tptbox"] and victim.read_bytes() == data
    assert verify_source_folder(tpt, tmp_path / tpt.folder) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [tpt.folder]  # no partial or archive left
