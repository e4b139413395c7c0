"""The shared cache folder: where hubpipe keeps data that outlives a run, chosen by the environment."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hubpipe.pipeline.core.errors import ConfigError


def cache_root() -> Path:
    """Where hubpipe keeps data that outlives a run (sample data, built backbones, downloads).

    ``$HUBPIPE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/hubpipe``, else ``~/.cache/hubpipe``.
    """
    return _cache_root_and_setting()[0]


def writable_cache_root(create: bool = True) -> Path:
    """:func:`cache_root`, created if needed: a runner calls it before the first stage starts.

    A folder that cannot be created or written (a read-only home) is a :class:`ConfigError` naming the
    settings that choose another. With ``create=False`` nothing is created: the folder, or the nearest folder
    above it that exists, must let a file be created (tried, not judged from permission bits).
    """
    root, setting = _cache_root_and_setting()
    reason = _unwritable_reason(root) if create else _uncreatable_reason(root)
    if reason:
        raise ConfigError(
            f"cannot use {root} (from {setting}) as hubpipe's cache folder: {reason}; "
            "set HUBPIPE_CACHE_DIR (or XDG_CACHE_HOME) to a writable folder"
        )
    return root


def _unwritable_reason(root: Path) -> str:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    return "" if os.access(root, os.W_OK | os.X_OK) else "not writable"


def _uncreatable_reason(root: Path) -> str:
    existing = next(folder for folder in (root, *root.parents) if folder.exists())
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".hubpipe-write-check-"):
            return ""
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()


def _cache_root_and_setting() -> tuple[Path, str]:
    """The cache folder and the setting it comes from."""
    explicit = os.environ.get("HUBPIPE_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser(), "HUBPIPE_CACHE_DIR"
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "hubpipe", "XDG_CACHE_HOME"
    return Path.home() / ".cache" / "hubpipe", "the home folder"
