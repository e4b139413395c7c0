"""Named crash points: places where a kill is most likely to leave something half done, for fault injection.

``crash_point(name)`` does nothing unless the environment variable ``HUBPIPE_CRASH_AT`` names that point;
then the process kills itself with SIGKILL there: no ``finally``, no ``atexit``, exactly like ``kill -9`` or
a node losing power. The fault-injection tests (``tests/faults/``) and ``benchmarks/faults.py`` run the
pipeline once per point and check that a rerun recovers. ``HUBPIPE_CRASH_AT=name:N`` kills at the N-th time
the point is reached (1 by default), e.g. after the second epoch's checkpoint.
"""

from __future__ import annotations

import logging
import os
import signal

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

_reached: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    value = os.environ.get(ENV_VAR, "").strip()
    if not value:
        return None
    name, _, count = value.partition(":")
    return name, int(count) if count.isdigit() and int(count) > 0 else 1


def crash_point(name: str) -> None:
    """SIGKILLs this process when ``HUBPIPE_CRASH_AT`` names ``name`` (see the module docstring)."""
    if name not in CRASH_POINTS:
        raise ValueError(f"unknown crash point {name!r}")
    target = _target()
    if target is None or target[0] != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] < target[1]:
        return
    logging.getLogger(__name__).warning("crash point %s: killing process %d", name, os.getpid())
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)
