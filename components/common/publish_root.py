"""The publish root: where every run's TensorBoard logs and every blessed model are kept.

Layout (the root is a local directory, a ``gs://`` path or a mounted PVC path)::

    <root>/tensorboard/<run_id>/<model>/...   logs of every model of every run, blessed or not
    <root>/models/<version>/                  a blessed model: serving/, head/, labels.txt, model.json,
                                              metrics.json, blessing.json and version.json (written last)
    <root>/models/LATEST                      the version id of the last blessed model, one line

A version counts only once its ``version.json`` is there, and LATEST moves (temporary file, then rename)
only after that, so a reader that follows LATEST never finds a half-copied model. So a version that LATEST
names (or that the version it names was compared with) and that cannot be read is damage, not "nothing
blessed yet": :func:`reference_from` raises :class:`~hubpipe.pipeline.core.errors.PublishRootDamaged` for it, and
only an absent LATEST means that nothing was blessed.

Publishing a model to a local (or mounted) root happens under an OS lock on ``<root>/.publish.lock``
(:func:`locked`): a compare-and-swap of LATEST is then exact, and any ``.tmp-*`` in ``models/`` found under
the lock was left by a killed publisher. A ``gs://`` root has no such lock (see the README).

Without ``publish.root`` the root is ``published/<experiment>`` in hubpipe's cache folder
(``$HUBPIPE_CACHE_DIR``, else ``~/.cache/hubpipe``), one root per experiment (``publish.experiment``; the local
runner fills in the run folder's name when it is empty): a run compares its candidates with the last model
blessed in its own experiment, never with an unrelated run's. ``hubpipe tensorboard`` serves ``published/``,
so it finds every experiment's runs. A root shared by several experiments is one setting away: the same
``publish.root`` (or the same ``publish.experiment``) for all of them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubpipe.components.common import storage
from hubpipe.components.common.uris import require_scheme
from hubpipe.pipeline.core.cache_root import cache_root
from hubpipe.pipeline.core.config import PipelineConfig
from hubpipe.pipeline.core.errors import PublishRootDamaged, UsageError
from hubpipe.pipeline.core.locking import exclusive, remove_path

LOG = logging.getLogger(__name__)

TENSORBOARD_DIR = "tensorboard"
MODELS_DIR = "models"
LATEST_FILE = "LATEST"
VERSION_FILE = "version.json"
#: Prefix of the folders a version is copied into before it is renamed into place.
TMP_PREFIX = ".tmp-"
LOCK_FILE = ".publish.lock"


def preflight(config: PipelineConfig) -> None:
    """Before a run starts (evaluate and publish read the root, publish writes to it): a remote root must be on
    a file system hubpipe can write to, and a local (or mounted) root must let hubpipe create files.

    Remote roots (``gs://`` ...) are not probed: that would need credentials and a request before any stage.
    """
    configured = config.publish.root.strip()
    require_scheme(configured, "publish.root")
    root = resolve_root(configured, config.publish.experiment)
    if not storage.is_remote(root):
        where = "publish.root" if configured else "publish.root (or HUBPIPE_CACHE_DIR, which holds the default root)"
        require_writable(root, f"set {where} to a folder hubpipe may write to")


def require_writable(root: str, hint: str) -> None:
    """:class:`UsageError` unless a file can be created in the local root and in its ``models/`` and
    ``tensorboard/`` folders that exist, or, for a root not created yet, in its nearest existing ancestor.

    Tried rather than judged from permission bits (which root ignores, and which a read-only mount does not
    show), with a temporary file that is deleted at once.
    """
    path = Path(root)
    if path.exists() and not path.is_dir():
        raise UsageError(f"publish.root {root} is not a folder")
    if path.exists():
        folders = [path, path / MODELS_DIR, path / TENSORBOARD_DIR]
    else:
        folders = [next(folder for folder in path.parents if folder.exists())]
    for folder in filter(Path.is_dir, folders):
        try:
            with tempfile.TemporaryFile(dir=folder, prefix=".hubpipe-write-check-"):
                pass
        except OSError as exc:
            raise UsageError(
                f"publish.root {root} is not writable: cannot create a file in {folder} ({exc.strerror or exc}); "
                + hint
            ) from None


#: The folder of hubpipe's cache folder that holds the default publish roots, one per experiment.
PUBLISHED_DIR = "published"
#: The experiment of a configuration that names none and is not run by the local runner (e.g. on Kubeflow).
DEFAULT_EXPERIMENT = "default"


def experiment_name(text: str) -> str:
    """``text`` (e.g. a run folder's name) as an experiment name: letters, digits, ``.``, ``_`` and ``-`` only,
    other characters replaced by ``-``, at most 100 characters; :data:`DEFAULT_EXPERIMENT` when nothing is left."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-")[:100]
    return name or DEFAULT_EXPERIMENT


def published_dir(cache: Path | None = None) -> str:
    """The folder of the default publish roots (``hubpipe tensorboard`` serves it: every experiment's logs), in
    hubpipe's cache folder ``cache`` (an executor's ``ctx.cache_root``; looked up when not given, as outside a
    run)."""
    return str((cache or cache_root()) / PUBLISHED_DIR)


def default_root(experiment: str = "", cache: Path | None = None) -> str:
    """The publish root used when ``publish.root`` is empty: the experiment's folder in :func:`published_dir`."""
    return str(Path(published_dir(cache)) / experiment_name(experiment))


def resolve_root(configured: str, experiment: str = "", cache: Path | None = None) -> str:
    """The configured root (an absolute path for a local one), or the experiment's default root in ``cache``."""
    root = configured.strip() or default_root(experiment, cache)
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
    root: str  # the publish root it is in
    model: str  # the model's name in the run that blessed it
    model_key: str  # hash of the model folder's files: the same key is the same model
    reference: str | None  # the version it was compared with when it was blessed
    path: str  # its folder
    record: dict[str, Any]  # the whole version.json


#: What :func:`_read_version` says of a version that is not there at all, or not complete yet.
MISSING, INCOMPLETE = "is missing", f"has no {VERSION_FILE}"


def _latest_hint(root: str) -> str:
    return f"write the id of a complete version (a folder in models/ with a {VERSION_FILE}) into {latest_path(root)}"


def damaged(root: str, version: str, named_by: str, problem: str) -> PublishRootDamaged:
    """The one-line error for a blessed version the publish root names but that cannot be used."""
    return PublishRootDamaged(
        f"publish root {root}: the blessed version {version} ({named_by}) {problem}, so the candidates cannot be "
        f"compared with it; restore {version_dir(root, version)}, or {_latest_hint(root)}"
    )


def _read_version(root: str, version: str) -> PublishedVersion | str:
    """The version's record, or what is wrong with it (:data:`MISSING`, :data:`INCOMPLETE` or a phrase)."""
    folder = version_dir(root, version)
    try:
        text = storage.read_text(storage.join(folder, VERSION_FILE))
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8
        return f"has an unreadable {VERSION_FILE} ({exc})"
    if text is None:
        return INCOMPLETE if storage.exists(folder) else MISSING
    try:
        record = json.loads(text)
        return PublishedVersion(
            version=version,
            root=root,
            model=str(record["model"]),
            model_key=str(record["model_key"]),
            reference=record.get("reference") or None,
            path=folder,
            record=record,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"has a malformed {VERSION_FILE} (not JSON with model and model_key)"


def read_version(root: str, version: str) -> PublishedVersion | None:
    """The version's record, or None when the version is missing, incomplete or unreadable (for publishing,
    where that means "not published yet"; see :func:`require_version` for a version LATEST names)."""
    found = _read_version(root, version)
    if isinstance(found, str):
        if found not in (MISSING, INCOMPLETE):
            LOG.warning("ignoring published version %s: it %s", version, found)
        return None
    return found


def require_version(root: str, version: str, named_by: str) -> PublishedVersion:
    """The record of a version that ``named_by`` (e.g. LATEST) names; :class:`PublishRootDamaged` when it
    cannot be read."""
    found = _read_version(root, version)
    if isinstance(found, str):
        raise damaged(root, version, named_by, found)
    return found


def read_latest_id(root: str) -> str | None:
    """The version id LATEST points at, or None when there is no LATEST (nothing was published yet).

    A LATEST that is there but holds no version id (empty, unreadable, a path) is :class:`PublishRootDamaged`.
    """
    path = latest_path(root)
    try:
        text = storage.read_text(path)
    except (OSError, ValueError) as exc:
        raise PublishRootDamaged(f"publish root {root}: cannot read LATEST ({exc}); {_latest_hint(root)}") from None
    if text is None:
        return None
    latest = text.strip()
    if latest in ("", ".", "..") or "/" in latest or "\\" in latest or not latest.isprintable():
        raise PublishRootDamaged(
            f"publish root {root}: LATEST holds {latest[:60]!r}, not a version id; {_latest_hint(root)}"
        )
    return latest


def find_reference(root: str, own_keys: Iterable[str]) -> PublishedVersion | None:
    """The last blessed model that is not one of ``own_keys`` (the models being evaluated), from LATEST."""
    return reference_from(root, read_latest_id(root), own_keys)


def reference_from(root: str, latest: str | None, own_keys: Iterable[str]) -> PublishedVersion | None:
    """The last blessed model that is not one of ``own_keys``, starting from version ``latest`` (LATEST as
    already read; None: nothing published).

    Normally that is LATEST. When LATEST is one of the candidates themselves (the same trained model, blessed
    by an earlier evaluation of it), the reference is what that evaluation compared it with, and so on back:
    re-evaluating a model never compares it with itself, and the answer does not change once it is published.

    A version on that path that cannot be read raises :class:`PublishRootDamaged`: the gate must not take a
    damaged root for an empty one.
    """
    own = set(own_keys)
    seen: set[str] = set()
    current = require_version(root, latest, "named by LATEST") if latest else None
    while current is not None and current.model_key in own and current.version not in seen:
        seen.add(current.version)
        named_by = f"the reference of {current.version}"
        current = require_version(root, current.reference, named_by) if current.reference else None
    return None if current is not None and current.model_key in own else current
