"""Small, atomic file writes shared by every stage: a file appears whole or not at all."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from hubpipe.pipeline.core.errors import UsageError


def _default_file_mode() -> int:
    """The mode a plain ``open()`` would give a new file (0o666 less the umask); mkstemp would give 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


#: The names of :func:`write_text_atomic`'s temporary files (``.<name>.<random>.tmp``): only a killed process
#: leaves them.
ATOMIC_TMP_NAME = re.compile(r"^\..+\.[a-z0-9_]+\.tmp$")


def atomic_tmp_name(name: str) -> re.Pattern[str]:
    """The names of :func:`write_text_atomic`'s temporary files for the file ``name``."""
    return re.compile(rf"^\.{re.escape(name)}\.[a-z0-9_]+\.tmp$")


def write_text_atomic(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


#: The names of :func:`staging_dir` folders and of the folders :func:`replace_dir` retires: only a killed
#: process leaves them.
STAGING_NAME = re.compile(r"^\.(tmp|old)-.+-\d+$")


def staging_dir(target: Path) -> Path:
    """The sibling folder in which ``target`` is built before :func:`replace_dir` (``.tmp-<name>-<pid>``)."""
    return target.with_name(f".tmp-{target.name}-{os.getpid()}")


def replace_dir(staging: Path, target: Path, between: Callable[[], None] | None = None) -> None:
    """Makes the complete folder ``staging`` the folder ``target``, with renames only.

    An existing ``target`` is renamed aside (``.old-<name>-<pid>``) first and removed last, so a reader sees the
    old folder or the new one, never a mixture; only between the two renames is there no ``target`` at all,
    and ``between`` (a crash point) is called there. When the second rename fails (or ``between`` raises), the
    old folder is put back before the error goes on.
    """
    retired = target.with_name(f".old-{target.name}-{os.getpid()}")
    if not target.exists():
        os.replace(staging, target)
        return
    os.replace(target, retired)
    try:
        if between is not None:
            between()
        os.replace(staging, target)
    except BaseException:
        with contextlib.suppress(OSError):  # another process may have put its folder there meanwhile
            os.replace(retired, target)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False, default=str) + "\n")


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


#: What a JSON file must hold, for :func:`read_json_checked`: a type (``dict``, ``str``, a tuple of types),
#: ``[shape]`` (a list of items of that shape) or ``{key: shape}`` (an object whose listed keys, when present and
#: not null, have those shapes; the key ``"*"`` stands for every key).
JsonShape = type | tuple | list | dict

_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number"}


def _kind(value: Any) -> str:
    return "null" if value is None else _TYPE_NAMES.get(type(value), type(value).__name__)


def shape_mismatch(value: Any, shape: JsonShape, where: str = "the top level") -> str | None:
    """Where ``value`` (parsed JSON) departs from ``shape``, in words; None when it fits."""
    if isinstance(shape, list):
        if not isinstance(value, list):
            return f"{where} is {_kind(value)}, expected a list"
        return next((m for i, item in enumerate(value) if (m := shape_mismatch(item, shape[0], f"{where}[{i}]"))), None)
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{where} is {_kind(value)}, expected an object"
        for key, inner in shape.items():
            for name, item in value.items() if key == "*" else [(key, value.get(key))]:
                problem = None if item is None else shape_mismatch(item, inner, f"{where}.{name}")
                if problem:
                    return problem
        return None
    if isinstance(value, shape):
        return None
    expected = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in (shape if isinstance(shape, tuple) else (shape,)))
    return f"{where} is {_kind(value)}, expected {expected}"


def read_json_checked(path: Path, shape: JsonShape, default: Any = None) -> Any:
    """``path``'s JSON when it has ``shape``; ``default`` when the file does not exist.

    For the files of a folder a user points a command at (a run folder): invalid JSON or another shape raises
    UsageError, one line that names the file and what is wrong with it.
    """
    if not path.exists():
        return default
    try:
        value = read_json(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not readable JSON ({exc}); rerun the stage that wrote it or delete it") from None
    problem = shape_mismatch(value, shape)
    if problem:
        raise UsageError(f"{path} is not what hubpipe writes there ({problem}); rerun the stage or delete it")
    return value


def dotted(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys, e.g. ``{"accuracy": {"b0": 0.9}}`` -> ``{"accuracy.b0": 0.9}``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(dotted(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def stable_hash(data: Any) -> str:
    """sha256 of the canonical JSON form of ``data`` (sorted keys)."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(blob.encode("ascii")).hexdigest()


def file_digest(path: Path) -> str:
    """The sha256 of the file at ``path``, read in blocks."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def hash_files(paths: Iterable[Path], root: Path) -> str:
    """sha256 over the relative names and contents of ``paths`` (in sorted order)."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()
