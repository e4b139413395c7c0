"""The publish root: where every run's TensorBoard logs and every blessed model are kept.

Layout (the root is a local directory, a ``gs://`` path or a mounted PVC path)::

    <root>/tensorboard/<run_id>/<model>/...   logs of every model of every run, blessed or not
    <root>/models/<version>/                  a blessed model: serving/, head/, labels.txt, model.json,
                                              metrics.json, blessing.json and version.json (written last)
    <root>/models/LATEST                      the version id of the last blessed model, one line

A version counts only once its ``version.json`` is there, and LATEST moves (temporary file, then rename)
only after that, so a reader that follows LATEST never finds a half-copied model.

Publishing a model to a local (or mounted) root happens under an OS lock on ``<root>/.publish.lock``
(:func:`locked`): a compare-and-swap of LATEST is then exact, and any ``.tmp-*`` in ``models/`` found under
the lock was left by a killed publisher. A ``gs://`` root has no such lock (see the README).

Without ``publish.root`` the root is ``published/`` in hubpipe's cache folder (``$HUBPIPE_CACHE_DIR``,
else ``~/.cache/hubpipe``): every local run on the machine publishes there and compares its candidates with
the last model blessed there, whatever its ``--output`` folder, and ``hubpipe tensorboard`` finds all runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubpipe.components.common import storage
from hubpipe.components.common.uris import require_scheme
from hubpipe.pipeline.config import PipelineConfig
from hubpipe.pipeline.locking import exclusive, remove_path
from hubpipe.pipeline.runtime import cache_root

LOG = logging.getLogger(__name__)

TENSORBOARD_DIR = "tensorboard"
MODELS_DIR = "models"
LATEST_FILE = "LATEST"
VERSION_FILE = "version.json"
#: Prefix of the folders a version is copied into before it is renamed into place.
TMP_PREFIX = ".tmp-"
LOCK_FILE = ".publish.lock"


def preflight(config: PipelineConfig) -> None:
    """Before a run starts (evaluate and publish read the root): a remote root must be on a file system hubpipe
    can write to."""
    require_scheme(config.publish.root.strip(), "publish.root")


def default_root() -> str:
    """The publish root used when ``publish.root`` is empty."""
    return str(cache_root() / "published")


def resolve_root(configured: str) -> str:
    """The configured root (an absolute path for a local one), or the default root."""
    root = configured.strip() or default_root()
    if storage.is_remote(root):
        return root.rstrip("/")
    return os.path.abspath(os.path.expanduser(root))


def logs_dir(root: str, run_id: str = "") -> str:
    """All published TensorBoard logs, or one run's when ``run_id`` is given."""
    return storage.join(root, TENSORBOARD_DIR, run_id) if run_id else storage.join(root, TENSORBOARD_DIR)


def models_dir(root: str) -> str:
    return storage.join(root, MODELS_DIR)


def version_dir(root: str, version: str) -> str:
    return storage.join(root, MODELS_DIR, version)


def latest_path(root: str) -> str:
    return storage.join(root, MODELS_DIR, LATEST_FILE)


@contextlib.contextmanager
def locked(root: str) -> Iterator[None]:
    """Holds the publish lock of a local root, then removes what killed publishers left in ``models/``.

    A ``gs://`` root is not locked: there, two publishers that read LATEST at the same moment can both
    move it (the README says what holds).
    """
    if storage.is_remote(root):
        yield
        return
    with exclusive(Path(root) / LOCK_FILE):
        for leftover in killed_publish_leftovers(root):
            LOG.info("removing %s, left by a publish that was killed", leftover)
            remove_path(leftover)
        yield


def killed_publish_leftovers(root: str) -> list[Path]:
    """What killed publishers left in the local root ``root``: version folders being copied (:data:`TMP_PREFIX`)
    and LATEST's temporary files. Only one that holds :func:`locked` may take them for leftovers."""
    folder = Path(models_dir(root))
    return [*folder.glob(f"{TMP_PREFIX}*"), *folder.glob(f"{LATEST_FILE}.tmp-*")]


@dataclass(frozen=True)
class PublishedVersion:
    """A complete blessed model in the publish root, as its ``version.json`` describes it."""

    version: str
    model: str  # the model's name in the run that blessed it
    model_key: str  # hash of the model folder's files: the same key is the same model
    reference: str | None  # the version it was compared with when it was blessed
    path: str  # its folder
    record: dict[str, Any]  # the whole version.json


def read_version(root: str, version: str) -> PublishedVersion | None:
    """The version's record, or None when the version is missing or incomplete."""
    folder = version_dir(root, version)
    text = storage.read_text(storage.join(folder, VERSION_FILE))
    if text is None:
        return None
    try:
        record = json.loads(text)
        return PublishedVersion(
            version=version,
            model=str(record["model"]),
            model_key=str(record["model_key"]),
            reference=record.get("reference") or None,
            path=folder,
            record=record,
        )
    except (ValueError, KeyError, TypeError):
        LOG.warning("ignoring published version %s: unreadable %s", version, VERSION_FILE)
        return None


def read_latest_id(root: str) -> str | None:
    """The version id LATEST points at, or None when nothing was published yet."""
    text = storage.read_text(latest_path(root))
    if text is None:
        return None
    return text.strip() or None


def read_latest(root: str) -> PublishedVersion | None:
    latest = read_latest_id(root)
    return read_version(root, latest) if latest else None


def find_reference(root: str, own_keys: Iterable[str]) -> PublishedVersion | None:
    """The last blessed model that is not one of ``own_keys`` (the models being evaluated), from LATEST."""
    return reference_from(root, read_latest_id(root), own_keys)


def reference_from(root: str, latest: str | None, own_keys: Iterable[str]) -> PublishedVersion | None:
    """The last blessed model that is not one of ``own_keys``, starting from version ``latest`` (LATEST as
    already read; None: nothing published).

    Normally that is LATEST. When LATEST is one of the candidates themselves (the same trained model, blessed
    by an earlier evaluation of it), the reference is what that evaluation compared it with, and so on back:
    re-evaluating a model never compares it with itself, and the answer does not change once it is published.
    """
    own = set(own_keys)
    seen: set[str] = set()
    current = read_version(root, latest) if latest else None
    while current is not None and current.model_key in own and current.version not in seen:
        seen.add(current.version)
        current = read_version(root, current.reference) if current.reference else None
    return None if current is not None and current.model_key in own else current
