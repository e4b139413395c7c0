"""What ``data.source`` names, where its files are, and a cheap fingerprint of them for the stage cache.

A source is ``sample`` (the embedded dataset, generated into the cache), a preset name (see
:mod:`hubpipe.data.presets`), an http(s) URL of an archive, a URI that ``tf.io.gfile`` reads (gs://: a folder
or an archive), or a local folder or archive. Archives are extracted into the cache, downloads are cached too.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubpipe.components.common.text import first_line
from hubpipe.components.common.uris import require_scheme
from hubpipe.components.ingest.archives import extract_archive, has_archive_suffix, is_archive
from hubpipe.components.ingest.download import copy_remote, download
from hubpipe.components.ingest.quarantine import Quarantined
from hubpipe.data.presets import PRESETS, get_preset
from hubpipe.pipeline.core.config import SAMPLE_SOURCE, DataConfig, PipelineConfig
from hubpipe.pipeline.core.errors import DataError, HubpipeError, UsageError


@dataclass(frozen=True)
class ResolvedSource:
    """A source ready to list: ``location`` is a local folder or a gfile URI of a folder."""

    kind: str  # sample, directory, archive, url, remote
    location: str
    description: str
    skipped: tuple[Quarantined, ...] = ()  # archive members that were not extracted


@dataclass(frozen=True)
class SourceRef:
    """What a source string names, before anything is fetched."""

    kind: str  # sample, url, remote, local
    value: str
    sha256: str = ""


def parse_source(data: DataConfig) -> SourceRef:
    source = data.source.strip()
    if source == SAMPLE_SOURCE:
        return SourceRef("sample", source)
    preset = get_preset(source)
    if preset is not None:
        return SourceRef("url", preset.url, data.download_sha256 or preset.sha256)
    if re.match(r"^https?://", source, re.IGNORECASE):
        return SourceRef("url", source, data.download_sha256)
    if "://" in source:
        return SourceRef("remote", source)
    return SourceRef("local", str(Path(source).expanduser()))


def _missing(path: str) -> UsageError:
    names = ", ".join([SAMPLE_SOURCE, *PRESETS])
    return UsageError(
        f"data source {path} does not exist (expected a folder, a .zip/.tar archive, a URL, a gs:// path, "
        f"or one of: {names})"
    )


def resolve_source(data: DataConfig, cache: Path) -> ResolvedSource:
    """Fetches and unpacks the source as needed (into ``cache``) and says where its files are."""
    ref = parse_source(data)
    if ref.kind == "sample":
        from hubpipe.data.sample import SampleSpec, ensure_sample_dataset

        folder = ensure_sample_dataset(cache, SampleSpec(seed=data.sample_seed))
        return ResolvedSource("sample", str(folder), f"the embedded sample dataset (seed {data.sample_seed})")
    if ref.kind == "url":
        archive = download(ref.value, cache, ref.sha256, data.max_extract_bytes)
        return _from_archive("url", archive, ref.value, data, cache)
    if ref.kind == "remote":
        return _resolve_remote(ref.value, data, cache)
    path = _local_source(ref.value)
    if path.is_dir():
        return ResolvedSource("directory", str(path.resolve()), str(path.resolve()))
    return _from_archive("archive", path, str(path), data, cache)


def _local_source(value: str) -> Path:
    """A local source that is a folder or an archive; raises UsageError otherwise."""
    path = Path(value)
    if path.is_file() and not is_archive(path):
        raise UsageError(f"data source {path} is a file but not a .zip or .tar archive")
    if not path.is_dir() and not path.is_file():
        raise _missing(str(path))
    return path


def preflight(config: PipelineConfig) -> None:
    """Checks the data source's kind before a run starts: a local path exists, a URI has a readable scheme."""
    ref = parse_source(config.data)
    if ref.kind == "remote":
        require_scheme(ref.value, "data.source")
    elif ref.kind == "local":
        _local_source(ref.value)


def _from_archive(kind: str, archive: Path, description: str, data: DataConfig, cache: Path) -> ResolvedSource:
    extracted = extract_archive(archive, cache, data.max_file_bytes, data.max_extract_bytes)
    return ResolvedSource(kind, str(extracted.root), description, extracted.skipped)


def _gfile() -> Any:
    from hubpipe.pipeline.core.runtime import import_tensorflow

    return import_tensorflow().io.gfile


def _resolve_remote(uri: str, data: DataConfig, cache: Path) -> ResolvedSource:
    gfile = _gfile()
    try:
        if gfile.isdir(uri):
            return ResolvedSource("remote", uri.rstrip("/"), uri)
        if gfile.exists(uri) and has_archive_suffix(uri):
            return _from_archive("remote", copy_remote(uri, cache, data.max_extract_bytes), uri, data, cache)
    except HubpipeError:  # already one line: a damaged archive, a full cache disk
        raise
    except Exception as exc:  # file-system plugins raise their own error types
        raise DataError(f"cannot read data source {uri}: {first_line(exc)}") from None
    raise DataError(f"data source {uri} is neither a folder nor a .zip/.tar archive that can be read")


# ---------------------------------------------------------------------------------------------------------------
# Fingerprint: identifies the source data cheaply, without reading image contents.


def source_fingerprint(config: PipelineConfig, inputs: Mapping[str, Path], previous_dir: Path | None) -> dict[str, Any]:
    """What identifies the ingest stage's input data (for the runner's cache); raises for a missing source."""
    ref = parse_source(config.data)
    if ref.kind == "sample":
        from hubpipe.data.sample import GENERATOR_VERSION

        return {"kind": "sample", "generator": GENERATOR_VERSION, "seed": config.data.sample_seed}
    if ref.kind == "url":
        return {"kind": "url", "url": ref.value, "sha256": ref.sha256}
    if ref.kind == "remote":
        return {"kind": "remote", "uri": ref.value, "listing": _remote_listing_hash(ref.value)}
    path = Path(ref.value)
    if path.is_dir():
        return {"kind": "directory", "path": str(path.resolve()), "listing": _directory_listing_hash(path)}
    if path.is_file():
        info = path.stat()
        return {"kind": "file", "path": str(path.resolve()), "size": info.st_size, "mtime_ns": info.st_mtime_ns}
    raise _missing(str(path))


def _directory_listing_hash(folder: Path) -> str:
    """sha256 over sorted (relative path, size, mtime) of every file below ``folder``."""
    rows = []
    for parent, dirs, files in os.walk(folder):
        dirs.sort()
        for name in files:
            full = os.path.join(parent, name)
            try:
                info = os.stat(full)
            except OSError:
                info = os.lstat(full)
            rows.append(f"{os.path.relpath(full, folder)}\0{info.st_size}\0{info.st_mtime_ns}")
    return hashlib.sha256("\n".join(sorted(rows)).encode("utf-8", "surrogateescape")).hexdigest()


def _remote_listing_hash(uri: str) -> str:
    gfile = _gfile()
    rows = []
    try:
        if not gfile.isdir(uri):
            info = gfile.stat(uri)
            return hashlib.sha256(f"{uri}\0{info.length}\0{info.mtime_nsec}".encode()).hexdigest()
        for parent, _dirs, files in gfile.walk(uri):
            for name in files:
                full = f"{parent.rstrip('/')}/{name}"
                info = gfile.stat(full)
                rows.append(f"{full[len(uri) :]}\0{info.length}\0{info.mtime_nsec}")
    except Exception as exc:
        raise DataError(f"cannot read data source {uri}: {first_line(exc)}") from None
    return hashlib.sha256("\n".join(sorted(rows)).encode("utf-8")).hexdigest()
