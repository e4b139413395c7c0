"""The machine's I/O errors told apart from the data's: a full disk is never a property of an image.

An ``OSError`` that carries an ``errno`` came from a system call. While ingest writes into hubpipe's cache (an
extraction, a download), every such error is the machine's: the disk is full (ENOSPC, EDQUOT), read-only
(EROFS), failing (EIO), or the process is out of memory or file handles. While ingest reads a source file, a
few errnos describe that file (:data:`FILE_ERRNOS`: it is gone, is not a file, may not be read by this user,
is a symlink loop) and make it a quarantine entry; every other errno is the machine's. What decoders raise for
bad bytes (a bad CRC, truncated data, not an image) carries no errno, and neither do the ``OSError``s of
Python's bz2/gzip modules for damaged streams. ``MemoryError`` is the machine's too.

A machine error stops the run with one line (:class:`MachineIOError`) and nothing built from the partial work
is cached: a rerun on a larger disk starts again and gets every image.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from typing import Any

from hubpipe.components.common.text import first_line
from hubpipe.pipeline.core.errors import StageError

#: errnos of reading one source file that describe the file, not the machine.
FILE_ERRNOS = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.ELOOP, errno.ENXIO}
)
#: What to do when hubpipe's cache cannot take a write.
CACHE_HINTS = {
    errno.ENOSPC: "set HUBPIPE_CACHE_DIR to a larger disk",
    errno.EDQUOT: "set HUBPIPE_CACHE_DIR to a larger disk",
    errno.EROFS: "set HUBPIPE_CACHE_DIR to a writable folder",
    errno.EACCES: "set HUBPIPE_CACHE_DIR to a writable folder",
}


class MachineIOError(StageError):
    """An I/O error of the machine (disk full, read-only, failing, out of memory): the run stops, exit code 1."""


def is_machine_error(exc: BaseException) -> bool:
    """True for ``MemoryError`` and for an ``OSError`` from a system call (one with an errno)."""
    return isinstance(exc, MemoryError) or (isinstance(exc, OSError) and exc.errno is not None)


def is_machine_read_error(exc: BaseException) -> bool:
    """True when reading a source file failed because of the machine, not because of the file."""
    return is_machine_error(exc) and getattr(exc, "errno", None) not in FILE_ERRNOS


def os_reason(exc: BaseException) -> str:
    """``no space left on device``: the OS's words for ``exc``, in lower case."""
    if isinstance(exc, MemoryError):
        return "out of memory"
    text = getattr(exc, "strerror", None) or (os.strerror(exc.errno) if getattr(exc, "errno", None) else str(exc))
    return text[:1].lower() + text[1:]


def machine_failure(exc: BaseException, action: str, in_cache: bool = False) -> MachineIOError:
    """The one-line error for ``exc``, met while ``action`` (e.g. ``extracting a.zip into /cache/...``).

    ``in_cache``: the failed write was into hubpipe's cache, so a full or read-only disk has a remedy.
    """
    hint = CACHE_HINTS.get(getattr(exc, "errno", None) or 0, "") if in_cache else ""
    return MachineIOError(f"{os_reason(exc)} while {action}" + (f" ({hint})" if hint else ""))


@contextlib.contextmanager
def machine_errors(action: str, in_cache: bool = False) -> Iterator[None]:
    """Raises the machine's errors met inside as one :class:`MachineIOError` (see :func:`machine_failure`);
    every other exception passes through unchanged."""
    try:
        yield
    except (OSError, MemoryError) as exc:
        if not is_machine_error(exc):
            raise
        raise machine_failure(exc, action, in_cache) from None


def from_beam_failure(exc: BaseException) -> MachineIOError | None:
    """The machine error that failed a Beam pipeline, or None. In process it is the error itself, its message
    suffixed with the step (``[while running 'Inspect']``); from a worker process only its traceback's text is
    left, whose last line names the class."""
    text = str(exc) if isinstance(exc, MachineIOError) else ""
    for line in str(exc).splitlines():
        _, found, message = line.partition(f"{MachineIOError.__name__}: ")
        text = message if found else text
    return MachineIOError(text.split(" [while running")[0].strip()) if text else None


@contextlib.contextmanager
def tensorflow_write_errors(tf: Any, action: str) -> Iterator[None]:
    """Raises what TensorFlow's file system met while ``action`` (writing a TFRecord shard into the run folder)
    as one :class:`MachineIOError`: its errors carry no errno (a full disk is a ``ResourceExhaustedError``), and a
    write into hubpipe's own folder fails only because of the machine."""
    try:
        yield
    except tf.errors.OpError as exc:
        reason = first_line(exc, 200).rsplit("; ", 1)[-1]
        raise MachineIOError(f"{reason[:1].lower() + reason[1:]} while {action}") from None
