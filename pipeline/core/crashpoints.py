"""Named crash points: places where a kill or a failed write is most likely to leave something half done, for
fault injection.

``crash_point(name)`` does nothing unless the environment variable ``HUBPIPE_CRASH_AT`` names that point;
then, by default, the process kills itself with SIGKILL there: no ``finally``, no ``atexit``, exactly like
``kill -9`` or a node losing power. ``HUBPIPE_CRASH_AT=name:N`` acts at the N-th time the point is reached (1
by default), e.g. after the second epoch's checkpoint. ``HUBPIPE_CRASH_AT=name:N:enospc`` (or ``:eio``) raises
the ``OSError`` of a full disk (or of an I/O error) there instead, as a write at that point would: the
process goes on as it does on a real one. The fault-injection tests (``tests/faults/``) and
``benchmarks/faults.py`` run the pipeline once per point and check that the run fails cleanly or is killed,
and that a rerun recovers.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
from dataclasses import dataclass

ENV_VAR = "HUBPIPE_CRASH_AT"

#: Every crash point the code passes, in pipeline order. The fault-injection suite covers each of them.
CRASH_POINTS: tuple[str, ...] = (
    "ingest.in_extraction",  # an archive half extracted into the source cache
    "ingest.after_records",  # TFRecords written, the stage not committed
    "train.after_checkpoint",  # a training epoch checkpointed, the model not finished
    "runner.before_commit",  # a stage's temporary folder complete with its manifest, not renamed yet
    "runner.between_renames",  # the previous stage folder moved aside, the new one not in place yet
    "publish.in_version_copy",  # a blessed model half copied into the publish root's temporary folder
    "publish.after_version_dir",  # the version folder renamed into place, its version.json not written
    "publish.before_latest",  # the version complete, LATEST not moved yet
)

KILL = "kill"
#: What a crash point can do besides a SIGKILL: the errno of the OSError it raises.
IO_ERRORS: dict[str, int] = {"enospc": errno.ENOSPC, "eio": errno.EIO}

_reached: dict[str, int] = {}


@dataclass(frozen=True)
class Target:
    """What ``HUBPIPE_CRASH_AT`` asks for: a point, the how-many-th time it is reached, and the action."""

    point: str
    count: int = 1
    action: str = KILL

    def value(self) -> str:
        """The ``HUBPIPE_CRASH_AT`` value that asks for this."""
        return f"{self.point}:{self.count}" + (f":{self.action}" if self.action != KILL else "")


def parse_target(value: str) -> Target | None:
    """``POINT[:N[:ACTION]]`` as a :class:`Target`; None for an empty value. ValueError for an unknown action."""
    if not value.strip():
        return None
    name, _, rest = value.strip().partition(":")
    count, _, action = rest.partition(":")
    action = action.strip().lower() or KILL
    if action != KILL and action not in IO_ERRORS:
        raise ValueError(f"{ENV_VAR}: unknown action {action!r} (kill, {', '.join(IO_ERRORS)})")
    return Target(name, int(count) if count.isdigit() and int(count) > 0 else 1, action)


def crash_point(name: str) -> None:
    """SIGKILLs this process, or raises an injected OSError, when ``HUBPIPE_CRASH_AT`` names ``name``."""
    if name not in CRASH_POINTS:
        raise ValueError(f"unknown crash point {name!r}")
    target = parse_target(os.environ.get(ENV_VAR, ""))
    if target is None or target.point != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] != target.count:
        return
    log = logging.getLogger(__name__)
    if target.action in IO_ERRORS:
        code = IO_ERRORS[target.action]
        log.warning("crash point %s: injecting %s", name, errno.errorcode[code])
        raise OSError(code, f"{os.strerror(code)} (injected at crash point {name})")
    log.warning("crash point %s: killing process %d", name, os.getpid())
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)
