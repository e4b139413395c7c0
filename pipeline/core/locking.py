"""OS file locks that a killed process releases: one run per output folder, owners of temporary folders.

Every lock here is ``flock`` on a small file. The kernel drops it when its process ends, however it ends
(``kill -9``, an evicted pod), so a lock left by a dead process never blocks anyone, and "can I take the
lock?" is the test for "is its owner dead?". No pid is ever trusted for that: pids are reused, and a pod
replaced on the same volume has a new pid namespace. (On NFS, Linux emulates ``flock`` with POSIX locks the
server keeps, so the same holds across hosts on an NFSv4 volume.)

* :class:`RunLock` (``DIR/.lock``): the run that holds it is the only one using the run folder, so anything
  temporary it finds there was left by a dead run.
* :func:`exclusive`: a lock held for a short critical section (publishing to a local root), waited for.
* :func:`owned_tmp` / :func:`remove_dead_tmp`: a temporary folder or file ``X`` in a place several processes
  share (the source cache) is created only while its creator holds ``X.lock``; a sweeper removes ``X`` when it
  can take that lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from hubpipe.pipeline.core.errors import UsageError

LOG = logging.getLogger(__name__)

RUN_LOCK_FILE = ".lock"
OWNER_SUFFIX = ".lock"
#: The names the shared caches give their temporary folders: ``.<final name>.tmp-<pid>`` (a glob and a regex).
TMP_PATTERN = ".*.tmp-*"
OWNED_TMP_NAME = re.compile(r"^\..+\.tmp-\d+$")


def process_identity() -> dict[str, Any]:
    """Who this process is, for run.json and lock files: pid, host and start time (information only)."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _try_flock(handle: IO[str], mode: int = fcntl.LOCK_EX) -> bool:
    """Takes the lock without waiting; False when another open file holds it."""
    try:
        fcntl.flock(handle.fileno(), mode | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
            return False
        raise
    return True


class RunLock:
    """The exclusive lock of a run folder, held from start to end of ``hubpipe run``.

    A second run into the folder fails at once with a :class:`UsageError` naming the holder's pid. The lock
    file stays (removing it would let two processes lock two different files of the same name).
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / RUN_LOCK_FILE
        self._handle: IO[str] | None = None

    def acquire(self) -> RunLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        if not _try_flock(handle):
            holder = _holder(handle)
            handle.close()
            who = f"pid {holder.get('pid')}" if holder.get("pid") else "another process"
            raise UsageError(f"another run ({who}) is using {self.folder}; wait for it or choose another --output")
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(process_identity()) + "\n")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the only open file of the lock releases it
            self._handle = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(handle: IO[str]) -> dict[str, Any]:
    handle.seek(0)
    try:
        holder = json.loads(handle.read() or "{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def run_in_progress(folder: Path) -> bool:
    """True while a live process holds the run folder's lock (probed with a shared lock, released at once)."""
    path = Path(folder) / RUN_LOCK_FILE
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115
    except FileNotFoundError:
        return False
    with handle:
        return not _try_flock(handle, fcntl.LOCK_SH)


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``lock_path`` (created if needed), waiting while another process holds it."""
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a", encoding="utf-8") as handle:
        if not _try_flock(handle):
            LOG.info("waiting for %s, held by another process", lock_path)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def owned_tmp(path: Path) -> Iterator[Path]:
    """Holds ``<path>.lock`` while the temporary folder or file ``path`` may exist; yields ``path``.

    The caller creates, fills and renames (or removes) ``path`` inside the ``with``; whatever is left of it
    after a kill is removed by the next :func:`remove_dead_tmp` of its folder.
    """
    lock_path = path.with_name(path.name + OWNER_SUFFIX)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a", encoding="utf-8") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield path
        finally:
            remove_path(path)
            lock_path.unlink(missing_ok=True)


def remove_dead_tmp(folder: Path, pattern: str) -> list[Path]:
    """Removes the entries of ``folder`` matching ``pattern`` whose owners (see :func:`owned_tmp`) are dead.

    An entry without a lock file was left by a version that did not write one, by a dead owner too.
    """
    removed = []
    for entry in sorted(Path(folder).glob(pattern)):  # nothing when the folder does not exist
        if entry.name.endswith(OWNER_SUFFIX):
            continue
        lock_path = entry.with_name(entry.name + OWNER_SUFFIX)
        with open(lock_path, "a", encoding="utf-8") as handle:
            if not _try_flock(handle):
                continue  # its owner is alive
            remove_path(entry)
            lock_path.unlink(missing_ok=True)
        LOG.info("removed %s, left by a process that was killed", entry)
        removed.append(entry)
    for lock_path in Path(folder).glob(pattern + OWNER_SUFFIX):
        _remove_orphan_lock(lock_path)
    return removed


def _remove_orphan_lock(lock_path: Path) -> None:
    """A lock file whose folder is gone and whose owner is dead (killed between the two removals)."""
    if lock_path.with_name(lock_path.name[: -len(OWNER_SUFFIX)]).exists():
        return
    with open(lock_path, "a", encoding="utf-8") as handle:
        if _try_flock(handle):
            lock_path.unlink(missing_ok=True)


def remove_path(path: Path) -> None:
    """Removes a file or a folder tree; nothing happens when it is not there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
