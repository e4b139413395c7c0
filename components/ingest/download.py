"""Downloads of dataset archives into the cache: atomic, verified when the size or checksum is known, reused."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlparse

from hubpipe.components.ingest.io_errors import machine_errors
from hubpipe.pipeline.core.artifacts import read_json, stable_hash, write_json_atomic
from hubpipe.pipeline.core.errors import DataError
from hubpipe.pipeline.core.locking import TMP_PATTERN, owned_tmp, remove_dead_tmp
from hubpipe.pipeline.core.progress import progress

LOG = logging.getLogger("hubpipe.ingest")

CHUNK = 1024 * 1024
TIMEOUT_S = 60
META_FILE = "download.json"


def download(url: str, cache: Path, sha256: str = "", max_bytes: int = 0) -> Path:
    """The file at ``url``, downloaded once into ``cache/sources/downloads/<key>/`` and verified.

    ``sha256`` (hex), when given, must match; the server's Content-Length, when sent, must match the bytes
    received. ``max_bytes`` (0: none) caps the download: a larger Content-Length is refused before the body is
    read, and a body without one is cut off at the limit (a cached file over it is refused too). A failed
    download leaves nothing behind, and the partial file of a killed one is removed by the next download into
    the same folder (``owned_tmp``). Raises DataError (the source) or MachineIOError (the cache) with one line.
    """
    sha256 = sha256.strip().lower()
    folder = cache / "sources" / "downloads" / stable_hash(url)[:20]
    name = Path(unquote(urlparse(url).path)).name or "download"
    target = folder / name
    if _reusable(folder, target, sha256):
        _check_size(url, target.stat().st_size, max_bytes)
        LOG.info("using the downloaded %s", target)
        return target
    action = f"downloading {url} into {folder}"
    with machine_errors(action, in_cache=True):
        folder.mkdir(parents=True, exist_ok=True)
        remove_dead_tmp(folder, TMP_PATTERN)  # partial files of killed downloads
        with owned_tmp(folder / f".{name}.tmp-{os.getpid()}") as tmp:
            digest = _fetch(url, tmp, max_bytes, action)
            if sha256 and digest != sha256:
                raise DataError(f"download of {url} has sha256 {digest}, expected {sha256} (data.download_sha256)")
            os.replace(tmp, target)
        write_json_atomic(folder / META_FILE, {"url": url, "sha256": digest, "bytes": target.stat().st_size})
    return target


def _reusable(folder: Path, target: Path, sha256: str) -> bool:
    try:
        meta = read_json(folder / META_FILE)
    except (OSError, ValueError):
        return False
    if not target.is_file() or target.stat().st_size != meta.get("bytes"):
        return False
    return not sha256 or meta.get("sha256") == sha256


def _check_size(url: str, size: int, max_bytes: int) -> None:
    if max_bytes and size > max_bytes:
        raise DataError(f"download of {url} is over {max_bytes:,} bytes (data.max_extract_bytes); stopped")


def _fetch(url: str, tmp: Path, max_bytes: int, action: str) -> str:
    """Streams ``url`` into ``tmp`` with a progress bar; returns the sha256 of the bytes received. The network's
    errors are one DataError, the cache disk's (writing ``tmp``) one MachineIOError."""
    LOG.info("downloading %s", url)
    request = urllib.request.Request(url, headers={"User-Agent": "hubpipe"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            expected = int(response.headers.get("Content-Length") or 0)
            _check_size(url, expected, max_bytes)
            digest, received = _stream(url, response, tmp, expected, max_bytes, action=action)
    except urllib.error.HTTPError as exc:
        raise DataError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DataError(f"cannot download {url}: {exc.reason}") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise DataError(f"cannot download {url}: {exc}") from None
    if expected and received != expected:
        raise DataError(f"download of {url} stopped after {received:,} of {expected:,} bytes")
    return digest


def _stream(url: str, response: IO[bytes], tmp: Path, expected: int, max_bytes: int, *, action: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    received = 0
    bar = progress(None, desc="download", total=expected or None, unit="B", unit_scale=True)
    with machine_errors(action, in_cache=True):  # the cache disk's errors; the network's are _fetch's
        sink = open(tmp, "wb")  # noqa: SIM115 (closed below, where its errors are the cache's too)
    try:
        for chunk in iter(lambda: response.read(CHUNK), b""):
            with machine_errors(action, in_cache=True):
                sink.write(chunk)
            digest.update(chunk)
            received += len(chunk)
            _check_size(url, received, max_bytes)
            bar.update(len(chunk))
    finally:
        bar.close()
        with machine_errors(action, in_cache=True):
            sink.close()
    return digest.hexdigest(), received


def copy_remote(uri: str, cache: Path, max_bytes: int = 0) -> Path:
    """A local copy of a remote file readable with ``tf.io.gfile`` (e.g. a gs:// archive), cached by size+mtime.

    A file over ``max_bytes`` (0: no limit) is refused before it is copied.
    """
    from hubpipe.pipeline.core.runtime import import_tensorflow

    gfile = import_tensorflow().io.gfile
    info = gfile.stat(uri)
    _check_size(uri, info.length, max_bytes)
    folder = cache / "sources" / "downloads" / stable_hash([uri, info.length, info.mtime_nsec])[:20]
    target = folder / (uri.rstrip("/").rsplit("/", 1)[-1] or "download")
    if target.is_file() and target.stat().st_size == info.length:
        return target
    with machine_errors(f"copying {uri} into {folder}", in_cache=True):  # gfile raises no OSError
        folder.mkdir(parents=True, exist_ok=True)
        remove_dead_tmp(folder, TMP_PATTERN)
        with owned_tmp(folder / f".{target.name}.tmp-{os.getpid()}") as tmp:
            with gfile.GFile(uri, "rb") as source, open(tmp, "wb") as sink:
                shutil.copyfileobj(source, sink, CHUNK)
            os.replace(tmp, target)
    return target
