"""Cache files that carry their SHA-256: written durably, the digest recorded at write, checked before use.

hubpipe's caches outlive the run that filled them (TFLite conversions in the model cache, feature vectors in
a run folder's cache), so a later run must not take what it finds there on trust. A cache writes each file
with :func:`write_durably` (an owned temporary file, fsynced, then renamed into place) and records the
digest it returns in the entry's record; a reader uses the file only when :func:`digest_problem` finds
nothing wrong. A file that does not match, or whose record holds no digest, is "damaged or incomplete": the
reader says so in one log line and the entry is computed again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from hubpipe.pipeline.core.locking import owned_tmp


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of the file's bytes (read in blocks, not all at once)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_durably(path: Path, write: Callable[[BinaryIO], object]) -> str:
    """Writes ``path`` with ``write(handle)`` through a temporary sibling that is fsynced before the rename
    makes it ``path``; returns the written file's SHA-256.

    The temporary file exists only while its writer holds its owner lock
    (:func:`~hubpipe.pipeline.core.locking.owned_tmp`), so a folder that several processes share can have killed
    writers' files removed (:func:`~hubpipe.pipeline.core.locking.remove_dead_tmp` with ``TMP_PATTERN``).
    """
    with owned_tmp(path.with_name(f".{path.name}.tmp-{os.getpid()}")) as tmp:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())  # on disk before the rename makes it the cached file
        os.replace(tmp, path)
    return sha256_file(path)


def digest_problem(path: Path, recorded: object) -> str:
    """What is wrong with ``path`` against the SHA-256 ``recorded`` for it ('' when nothing is)."""
    if not isinstance(recorded, str) or not recorded:
        return f"no SHA-256 recorded for {path.name}"
    try:
        found = sha256_file(path)
    except OSError as exc:
        return f"{path.name}: {exc.strerror or exc}"
    return "" if found == recorded else f"{path.name} does not match its recorded SHA-256"
