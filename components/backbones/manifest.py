"""The small JSON manifest hubpipe writes into SavedModel directories it builds or stages.

It records where the model came from and its fingerprint, so that a staged copy keeps its source's identity
(embedding caches stay valid) and a directory can be resolved with its input size and output length.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MANIFEST_NAME = "hubpipe_backbone.json"


def manifest_text(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Writes ``manifest`` into the SavedModel directory ``directory`` as :data:`MANIFEST_NAME`."""
    (directory / MANIFEST_NAME).write_text(manifest_text(manifest), encoding="utf-8")


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of a local SavedModel directory, or ``{}`` if it has none (or an unreadable one)."""
    try:
        data = json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
