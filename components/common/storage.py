"""File operations on a publish root: a local directory, a ``gs://`` path or a mounted PVC path.

Writes and copies go through ``tf.io.gfile``, which covers all three. Looking at a local root (reading the
LATEST pointer or a version record, checking that a path exists) uses plain file I/O instead, so that
computing the fingerprint of a cached run does not import TensorFlow.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

#: Called with each file's path relative to the source folder before it is copied (progress, tests).
CopyHook = Callable[[str], None]


def is_remote(path: str) -> bool:
    """True for URLs such as ``gs://bucket/dir``; False for local (and mounted) paths."""
    return "://" in path


def join(base: str, *parts: str) -> str:
    """Joins path parts with ``/`` for URLs and the local separator otherwise."""
    return posixpath.join(base, *parts) if is_remote(base) else os.path.join(base, *parts)


def _gfile() -> ModuleType:
    from hubpipe.pipeline.core.runtime import import_tensorflow

    return import_tensorflow().io.gfile


def _read(path: str, mode: str) -> str | bytes | None:
    if not is_remote(path):
        try:
            return Path(path).read_bytes() if mode == "rb" else Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
    gfile = _gfile()
    if not gfile.exists(path):
        return None
    with gfile.GFile(path, mode) as handle:
        return handle.read()


def read_text(path: str) -> str | None:
    """The file's text, or None when it does not exist."""
    return _read(path, "r")  # type: ignore[return-value]


def read_bytes(path: str) -> bytes | None:
    """The file's bytes, or None when it does not exist."""
    return _read(path, "rb")  # type: ignore[return-value]


def write_text_atomic(path: str, text: str) -> None:
    """Writes a temporary sibling file, then renames it over ``path`` (a whole object on GCS either way)."""
    gfile = _gfile()
    gfile.makedirs(posixpath.dirname(path) if is_remote(path) else os.path.dirname(path))
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    with gfile.GFile(tmp, "w") as handle:
        handle.write(text)
    try:
        gfile.rename(tmp, path, overwrite=True)
    except BaseException:
        if gfile.exists(tmp):
            gfile.remove(tmp)
        raise


def copy_tree(source: Path, destination: str, on_file: CopyHook | None = None) -> int:
    """Copies every file under the local folder ``source`` to ``destination`` (overwriting); returns the count."""
    gfile = _gfile()
    copied = 0
    for folder, _dirs, files in os.walk(source):
        relative = os.path.relpath(folder, source)
        target = destination if relative == "." else join(destination, *Path(relative).parts)
        gfile.makedirs(target)
        for name in sorted(files):
            if on_file is not None:
                on_file(os.path.relpath(os.path.join(folder, name), source))
            gfile.copy(os.path.join(folder, name), join(target, name), overwrite=True)
            copied += 1
    return copied


def exists(path: str) -> bool:
    return os.path.exists(path) if not is_remote(path) else _gfile().exists(path)


def remove_tree(path: str) -> None:
    """Deletes a folder and everything under it; nothing happens when it is not there."""
    gfile = _gfile()
    if gfile.exists(path):
        gfile.rmtree(path)


def rename(source: str, destination: str) -> None:
    """Renames a file or folder (atomic on local file systems; object by object on GCS)."""
    _gfile().rename(source, destination, overwrite=False)
