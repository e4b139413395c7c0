"""The machine's I/O errors (a full or failing disk, no memory) stop ingest with one line and cache nothing;
bad bytes (a bad CRC, a damaged stream, a file that is gone) are still quarantined."""

from __future__ import annotations

import errno
import io
import os
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import image_corpus as corpus
import pytest

from hubpipe.components.ingest import archives, download, images, records
from hubpipe.components.ingest import quarantine as q
from hubpipe.components.ingest.archives import extract_archive
from hubpipe.components.ingest.io_errors import MachineIOError
from hubpipe.components.ingest.listing import SourceFile
from hubpipe.components.ingest.records import Limits, inspect_file
from hubpipe.pipeline.core.errors import DataError, HubpipeError

GIB = 1024**3


class Disk:
    """A disk of ``capacity`` bytes behind the ``open`` of one module: writes past it fail with ``error``."""

    def __init__(self, capacity: int, error: int):
        self.capacity, self.error, self.used = capacity, error, 0

    def open(self, path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = open(path, mode, *args, **kwargs)  # noqa: SIM115
        return _Limited(handle, self) if ("w" in mode or "x" in mode) and "b" in mode else handle


class _Limited(io.RawIOBase):
    def __init__(self, handle: Any, disk: Disk):
        self.handle, self.disk = handle, disk

    def write(self, data: Any) -> int:
        if self.disk.used + len(data) > self.disk.capacity:
            raise OSError(self.disk.error, os.strerror(self.disk.error))
        self.disk.used += len(data)
        return self.handle.write(data)

    def close(self) -> None:
        self.handle.close()
        super().close()


def pets_zip(path: Path, count: int = 6, padding: int = 50_000) -> Path:
    """JPEGs of two classes, every other one padded with zeros (valid images, large when extracted)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for i in range(count):
            data = corpus.jpeg(i) + (b"\0" * padding if i % 2 else b"")
            bundle.writestr(f"pets/{('cat', 'dog')[i % 2]}/{i}.jpg", data)
    return path


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            errno.ENOSPC,
            r"no space left on device while extracting pets\.zip into \S+extracted "
            r"\(set HUBPIPE_CACHE_DIR to a larger disk\)$",
        ),
        (errno.EDQUOT, r"quota exceeded while extracting pets\.zip .*\(set HUBPIPE_CACHE_DIR to a larger disk\)$"),
        (errno.EIO, r"input/output error while extracting pets\.zip into \S+extracted$"),
    ],
)
def test_a_machine_error_during_extraction_stops_it_and_caches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int, message: str
) -> None:
    archive = pets_zip(tmp_path / "pets.zip")
    cache = tmp_path / "cache"
    disk = Disk(capacity=60_000, error=error)  # the first members fit, a padded one does not
    with monkeypatch.context() as patch:
        patch.setattr(archives, "open", disk.open, raising=False)
        with pytest.raises(MachineIOError, match=message) as info:
            extract_archive(archive, cache, max_member_bytes=GIB, max_total_bytes=GIB)
    assert isinstance(info.value, HubpipeError) and info.value.exit_code == 1
    assert 0 < disk.used <= 60_000
    assert list((cache / "sources" / "extracted").iterdir()) == []  # not committed, no temporary left
    extracted = extract_archive(archive, cache, max_member_bytes=GIB, max_total_bytes=GIB)
    assert extracted.skipped == ()
    assert len([p for p in extracted.root.rglob("*.jpg")]) == 6


def _corrupt_stored_member(path: Path, name: str) -> None:
    """Flips a byte of a stored member's data: the archive still opens, the member fails its CRC."""
    with zipfile.ZipFile(path) as bundle:
        info = bundle.getinfo(name)
    raw = bytearray(path.read_bytes())
    header = info.header_offset
    start = header + 30 + int.from_bytes(raw[header + 26 : header + 28], "little")
    start += int.from_bytes(raw[header + 28 : header + 30], "little")
    raw[start + 10] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_a_member_with_bad_bytes_is_still_quarantined(tmp_path: Path) -> None:
    archive = tmp_path / "pets.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as bundle:
        for i, name in enumerate(("pets/cat/a.jpg", "pets/cat/bad.jpg", "pets/dog/b.jpg")):
            bundle.writestr(name, corpus.jpeg(i))
    _corrupt_stored_member(archive, "pets/cat/bad.jpg")
    extracted = extract_archive(archive, tmp_path / "cache", max_member_bytes=GIB, max_total_bytes=GIB)
    assert [(s.path, s.reason) for s in extracted.skipped] == [("pets/cat/bad.jpg", q.CORRUPT_ARCHIVE_MEMBER)]
    assert "CRC" in extracted.skipped[0].detail
    assert sorted(p.name for p in extracted.root.rglob("*.jpg")) == ["a.jpg", "b.jpg"]


def test_a_damaged_compressed_stream_is_a_damaged_archive_not_a_machine_error(tmp_path: Path) -> None:
    archive = tmp_path / "pets.tar.bz2"
    with tarfile.open(archive, "w:bz2") as bundle:  # 2 MB: three bz2 blocks; the middle one is damaged
        for i in range(20):
            data = corpus.jpeg(i) + os.urandom(100_000)
            info = tarfile.TarInfo(f"pets/{('cat', 'dog')[i % 2]}/{i}.jpg")
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 64] = b"\xa5" * 64  # bz2 raises an OSError without an errno
    archive.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"archive pets\.tar\.bz2 is damaged") as info:
        extract_archive(archive, tmp_path / "cache", max_member_bytes=GIB, max_total_bytes=GIB)
    assert not isinstance(info.value, MachineIOError)
    assert list((tmp_path / "cache" / "sources" / "extracted").iterdir()) == []


def _source(path: Path) -> SourceFile:
    return SourceFile(uri=str(path), path=f"cat/{path.name}", label="cat", split="", size=path.stat().st_size)


def _failing_open(error: int) -> Callable[..., Any]:
    def fail(path: Any, *args: Any, **kwargs: Any) -> Any:
        raise OSError(error, os.strerror(error), str(path))

    return fail


@pytest.mark.parametrize("error", [errno.EIO, errno.ENOMEM, errno.ENFILE])
def test_a_machine_error_reading_a_source_image_is_raised_not_quarantined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    image = corpus.write(tmp_path / "a.jpg", corpus.jpeg(1))
    monkeypatch.setattr(records, "open", _failing_open(error), raising=False)
    with pytest.raises(MachineIOError, match=rf"{os.strerror(error).lower()} while reading \S+a\.jpg$"):
        inspect_file(_source(image), Limits(10**6, 10**6))


@pytest.mark.parametrize("error", [errno.EACCES, errno.ENOENT, errno.ELOOP])
def test_a_source_file_that_cannot_be_read_for_what_it_is_is_quarantined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    image = corpus.write(tmp_path / "a.jpg", corpus.jpeg(1))
    monkeypatch.setattr(records, "open", _failing_open(error), raising=False)
    entry = inspect_file(_source(image), Limits(10**6, 10**6))
    assert (entry.path, entry.reason, entry.detail) == ("cat/a.jpg", q.UNREADABLE, os.strerror(error))


def test_running_out_of_memory_while_decoding_is_raised_not_quarantined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = corpus.write(tmp_path / "a.jpg", corpus.jpeg(1))

    def no_memory(*args: Any, **kwargs: Any) -> Any:
        raise MemoryError

    monkeypatch.setattr(images, "open_image", no_memory)
    with pytest.raises(MachineIOError, match=r"out of memory while decoding \S+a\.jpg$"):
        inspect_file(_source(image), Limits(10**6, 10**6))


def test_a_full_disk_while_downloading_is_a_machine_error_that_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_root: tuple[str, Path]
) -> None:
    base, folder = http_root
    (folder / "pets.zip").write_bytes(os.urandom(3 * 1024 * 1024))
    disk = Disk(capacity=1024 * 1024, error=errno.ENOSPC)
    monkeypatch.setattr(download, "open", disk.open, raising=False)
    message = r"no space left on device while downloading \S+pets\.zip into \S+ \(set HUBPIPE_CACHE_DIR"
    with pytest.raises(MachineIOError, match=message):
        download.download(f"{base}/pets.zip", tmp_path / "cache")
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []
