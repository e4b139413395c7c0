"""Safe extraction of .zip and .tar[.gz|.bz2|.xz] archives into the cache.

Every member is checked before anything is written: absolute paths, ``..`` components, links, devices and
other special files are never extracted and are reported as ``unsafe_archive_member``; members over the
file-size limit are reported as ``file_too_large`` without being written; the total extracted size is capped
(an archive over the cap is refused as a whole). Files are written only below the extraction folder, with
default permissions. An extraction is keyed by the archive's path, size and modification time and reused; its
recorded total size is rechecked against the caller's limit on reuse. A member whose name is both a file and a
folder in the archive (``x`` and ``x/``) is quarantined, not extracted, and so is a member whose name has a
component over the file system's NAME_MAX (255 bytes) or makes a path over PATH_MAX (``name_too_long``).

A member whose bytes are bad (a bad CRC, truncated or undecompressable data, encrypted) is quarantined as
``corrupt_archive_member``; an I/O error of the machine (a full or read-only disk, EIO, no memory: see
:mod:`.io_errors`) stops the extraction with one line and nothing is committed, so that a rerun extracts again.
"""

from __future__ import annotations

import errno
import logging
import lzma
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from hubpipe.components.ingest import quarantine as q
from hubpipe.components.ingest.io_errors import is_machine_error, machine_errors
from hubpipe.components.ingest.quarantine import Quarantined
from hubpipe.pipeline.core.artifacts import read_json, stable_hash, write_json_atomic
from hubpipe.pipeline.core.crashpoints import crash_point
from hubpipe.pipeline.core.errors import DataError
from hubpipe.pipeline.core.locking import TMP_PATTERN, owned_tmp, remove_dead_tmp

LOG = logging.getLogger("hubpipe.ingest")

EXTRACTION_VERSION = 1
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
DATA_DIR = "data"
REPORT_FILE = "extraction.json"
CHUNK = 1024 * 1024
UNIX_ZIP = 3  # ZipInfo.create_system of archives made on Unix: only they carry file types in external_attr
#: What reading an archive raises for bad bytes (OSError only without an errno: bz2/gzip on damaged streams;
#: RuntimeError: an encrypted zip member; NotImplementedError: an unknown zip compression method).
DAMAGE = (
    OSError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    zipfile.BadZipFile,
    tarfile.TarError,
    RuntimeError,
    NotImplementedError,
)


@dataclass(frozen=True)
class Extracted:
    """An extracted archive: its files under ``root``, and the members that were not extracted."""

    root: Path
    skipped: tuple[Quarantined, ...] = ()


@dataclass
class _Extraction:
    """Running state of one extraction."""

    archive_name: str
    root: Path
    max_member_bytes: int
    max_total_bytes: int
    name_max: int = 255
    path_max: int = 4096
    total_bytes: int = 0
    written: set[str] = field(default_factory=set)
    skipped: list[Quarantined] = field(default_factory=list)

    def skip(self, name: str, reason: str, detail: str) -> None:
        self.skipped.append(Quarantined(name, reason, detail))


def has_archive_suffix(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def is_archive(path: Path) -> bool:
    """True for a file that is a zip or tar archive, by suffix or by content."""
    if has_archive_suffix(path.name):
        return True
    try:
        return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)
    except OSError:
        return False


def member_parts(name: str) -> tuple[str, ...] | str:
    """The path components of an archive member name, or why the name is unsafe."""
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or re.match(r"^[A-Za-z]:", normalized):
        return "absolute path"
    parts = tuple(part for part in normalized.split("/") if part not in ("", "."))
    if ".." in parts:
        return "path goes up with '..'"
    if not parts:
        return "empty name"
    if any("\0" in part for part in parts):
        return "NUL character in the name"
    return parts


def extract_archive(archive: Path, cache: Path, max_member_bytes: int, max_total_bytes: int) -> Extracted:
    """Extracts ``archive`` (once) into ``cache/sources/extracted/<key>/data`` and returns it."""
    archive = archive.resolve()
    info = archive.stat()
    key = stable_hash([EXTRACTION_VERSION, str(archive), info.st_size, info.st_mtime_ns, max_member_bytes])[:20]
    final = cache / "sources" / "extracted" / key
    if (final / REPORT_FILE).is_file():
        return _load_extracted(final, archive.name, max_total_bytes)
    with machine_errors(f"extracting {archive.name} into {final.parent}", in_cache=True):
        remove_dead_tmp(final.parent, TMP_PATTERN)
        with owned_tmp(final.with_name(f".{key}.tmp-{os.getpid()}")) as tmp:  # removed on the way out, however
            _extract_into(tmp, archive, max_member_bytes, max_total_bytes)
            _commit(tmp, final)
    return _load_extracted(final, archive.name, max_total_bytes)


def _extract_into(tmp: Path, archive: Path, max_member_bytes: int, max_total_bytes: int) -> None:
    """Extracts into the fresh folder ``tmp``: the files under ``tmp/data``, the report beside them."""
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / DATA_DIR).mkdir(parents=True)
    state = _Extraction(archive.name, tmp / DATA_DIR, max_member_bytes, max_total_bytes)
    state.name_max = _pathconf(tmp, "PC_NAME_MAX", state.name_max)
    state.path_max = _pathconf(tmp, "PC_PATH_MAX", state.path_max)
    LOG.info("extracting %s", archive.name)
    _extract_any(archive, state)
    write_json_atomic(
        tmp / REPORT_FILE,
        {"archive": str(archive), "bytes": state.total_bytes, "skipped": [s.to_dict() for s in state.skipped]},
    )


def _pathconf(folder: Path, name: str, default: int) -> int:
    try:
        return os.pathconf(folder, name)
    except (OSError, ValueError):
        return default


def _commit(tmp: Path, final: Path) -> None:
    try:
        tmp.rename(final)
    except OSError:  # another process extracted the same archive first
        if not (final / REPORT_FILE).is_file():
            raise


def _load_extracted(folder: Path, archive_name: str, max_total_bytes: int) -> Extracted:
    """A finished extraction, rechecked against this run's total-size limit (the key does not hold it)."""
    report = read_json(folder / REPORT_FILE)
    _check_total(int(report["bytes"]), archive_name, max_total_bytes)
    return Extracted(folder / DATA_DIR, tuple(Quarantined.from_dict(s) for s in report["skipped"]))


def _extract_any(archive: Path, state: _Extraction) -> None:
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, state)
            return
        if tarfile.is_tarfile(archive):
            _extract_tar(archive, state)
            return
    except DAMAGE as exc:
        if is_machine_error(exc):
            raise
        raise DataError(f"archive {archive.name} is damaged: {exc}") from None
    raise DataError(f"{archive.name} is not a zip or tar archive")


def _extract_zip(archive: Path, state: _Extraction) -> None:
    with zipfile.ZipFile(archive) as bundle:
        members = bundle.infolist()
        total = sum(m.file_size for m in members if m.file_size <= state.max_member_bytes)
        _check_total(total, state.archive_name, state.max_total_bytes)
        for member in members:
            kind = stat.S_IFMT(member.external_attr >> 16) if member.create_system == UNIX_ZIP else 0
            if kind == stat.S_IFLNK:
                state.skip(member.filename, q.UNSAFE_ARCHIVE_MEMBER, "symbolic link")
            elif kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                state.skip(member.filename, q.UNSAFE_ARCHIVE_MEMBER, "device or special file")
            else:
                opener = lambda m=member: bundle.open(m)  # noqa: E731
                _write_member(member.filename, member.is_dir(), member.file_size, opener, state)


class _StrictTarInfo(tarfile.TarInfo):
    """A member header that is damaged fails the archive: tarfile itself takes any header after the first that
    it cannot parse for the end of the archive, and would drop the rest of the members silently."""

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(tarfile_)
        except (tarfile.InvalidHeaderError, tarfile.TruncatedHeaderError) as exc:
            raise tarfile.ReadError(f"damaged member header at byte {tarfile_.offset:,} ({exc})") from None


def _extract_tar(archive: Path, state: _Extraction) -> None:
    with tarfile.open(archive, "r:*", tarinfo=_StrictTarInfo) as bundle:
        for member in _tar_members(bundle):
            if member.issym() or member.islnk():
                state.skip(member.name, q.UNSAFE_ARCHIVE_MEMBER, f"link to {member.linkname!r}")
            elif not (member.isdir() or member.isfile()):
                state.skip(member.name, q.UNSAFE_ARCHIVE_MEMBER, "device or special file")
            else:
                opener = lambda m=member: bundle.extractfile(m)  # noqa: E731
                _write_member(member.name, member.isdir(), member.size, opener, state)


def _tar_members(bundle: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Members in archive order, read one at a time (a .tar.gz is not listed up front)."""
    member = bundle.next()
    while member is not None:
        yield member
        member = bundle.next()


def _check_total(total: int, archive_name: str, max_total_bytes: int) -> None:
    if total > max_total_bytes:
        raise DataError(
            f"archive {archive_name} would extract to {total / 1e9:.1f} GB, over data.max_extract_bytes "
            f"({max_total_bytes / 1e9:.1f} GB)"
        )


Opener = Callable[[], IO[bytes] | None]


def _write_member(name: str, is_dir: bool, size: int, opener: Opener, state: _Extraction) -> None:
    parts = member_parts(name)
    if isinstance(parts, str):
        state.skip(name, q.UNSAFE_ARCHIVE_MEMBER, parts)
        return
    target = state.root.joinpath(*parts)
    too_long = _name_too_long(target, parts, state)
    if too_long:
        state.skip(name, q.NAME_TOO_LONG, too_long)
        return
    clash = _type_clash(state.root, parts, is_dir)
    if clash:
        state.skip(name, q.UNSAFE_ARCHIVE_MEMBER, clash)
        return
    if is_dir:
        target.mkdir(parents=True, exist_ok=True)
        return
    if size > state.max_member_bytes:
        state.skip(name, q.FILE_TOO_LARGE, f"{size:,} bytes, limit {state.max_member_bytes:,}; not extracted")
        return
    relative = "/".join(parts)
    if relative in state.written:
        state.skip(name, q.UNSAFE_ARCHIVE_MEMBER, "a second member with the same name")
        return
    state.total_bytes += size
    _check_total(state.total_bytes, state.archive_name, state.max_total_bytes)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy_member(opener, target, size)
    except DAMAGE as exc:
        long_name = getattr(exc, "errno", None) == errno.ENAMETOOLONG
        if is_machine_error(exc) and not long_name:
            raise  # the machine's, not the member's: the whole extraction stops (see extract_archive)
        target.unlink(missing_ok=True)
        reason = q.NAME_TOO_LONG if long_name else q.CORRUPT_ARCHIVE_MEMBER
        state.skip(name, reason, str(exc) or type(exc).__name__)
        return
    state.written.add(relative)
    crash_point("ingest.in_extraction")


def _name_too_long(target: Path, parts: tuple[str, ...], state: _Extraction) -> str:
    """Why the file system would refuse the member's name (a component over NAME_MAX bytes, a path over
    PATH_MAX), or ''."""
    longest = max(len(os.fsencode(part)) for part in parts)
    if longest > state.name_max:
        return f"a name of {longest} bytes in the path; the file system allows {state.name_max}"
    length = len(os.fsencode(str(target)))
    if length >= state.path_max:
        return f"the path would be {length} bytes long; the file system allows {state.path_max - 1}"
    return ""


def _type_clash(root: Path, parts: tuple[str, ...], is_dir: bool) -> str:
    """Why a member cannot be written where an earlier member put a file or folder of the same name, or ''."""
    for depth in range(1, len(parts)):
        if root.joinpath(*parts[:depth]).is_file():
            return f"'{'/'.join(parts[:depth])}' is both a file and a folder in the archive"
    target = root.joinpath(*parts)
    if target.exists() and target.is_dir() != is_dir:
        return f"'{'/'.join(parts)}' is both a file and a folder in the archive"
    return ""


def _copy_member(opener: Opener, target: Path, size: int) -> None:
    """Copies at most ``size`` bytes (the declared size) so a lying header cannot fill the disk."""
    source = opener()
    if source is None:
        raise OSError("no data")
    remaining = size
    with source, open(target, "xb") as sink:
        while remaining > 0:
            chunk = source.read(min(CHUNK, remaining))
            if not chunk:
                raise EOFError(f"member ends after {size - remaining:,} of {size:,} bytes")
            sink.write(chunk)
            remaining -= len(chunk)
