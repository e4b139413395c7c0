"""Errors that reach the user as one readable line, each with the command's exit code.

Exit codes: 0 success, 1 anything else, 2 bad input, 3 data rejected by the validation policy, 4 publishing
lost a race (LATEST moved since the evaluation; rerun to re-evaluate), 5 the publish root names a blessed model
that cannot be read (the evaluation gate cannot run). Anything that is not a :class:`HubpipeError` is a bug and
shows a traceback only with ``--debug``.

The rule for bad input (exit 2): what the user gave cannot be used as given and must be changed before a rerun
can succeed: a setting, flag or config file (:class:`ConfigError`, also for what the configuration alone
decides and the checks before any stage find: backbone names, the data source's kind, the publish root), a
command or call used wrongly (:class:`UsageError`), or the data itself (:class:`DataError`: no images, one
class, a damaged archive, an image that cannot be read). Exit 1 is left for what a rerun of the same input
may get past: the machine (a full disk, an I/O error), a stage failing for a reason of its own, a bug.

The hierarchy (the Python API raises these; ``hubpipe.HubpipeError`` catches them all)::

    HubpipeError (1)
    ├── ConfigError (2)
    │   └── UsageError (2)
    ├── DataError (2)
    ├── DataRejected (3)
    ├── StageError (1), SubmitError (1)
    ├── PublishConflict (4)
    └── PublishRootDamaged (5)
"""

from __future__ import annotations


class HubpipeError(Exception):
    """A failure explained to the user in one line (the message); ``exit_code`` is the process status."""

    exit_code = 1


class ConfigError(HubpipeError):
    """An invalid configuration value, flag or config file."""

    exit_code = 2


class UsageError(ConfigError):
    """A command or API call used wrongly: a missing path, an unknown name. A kind of :class:`ConfigError`, so that
    ``except hubpipe.ConfigError`` catches every mistake in what was asked."""

    exit_code = 2


class DataError(HubpipeError):
    """Input data that cannot be used at all (no classes, an unsafe archive, an unreachable source): bad input."""

    exit_code = 2


class DataRejected(HubpipeError):
    """Data rejected by the validation policy; the message lists the anomalies."""

    exit_code = 3


class StageError(HubpipeError):
    """A stage failed for a reason that is explained in its message."""


class SubmitError(HubpipeError):
    """The Kubeflow Pipelines API could not be reached or refused the request."""


class PublishConflict(HubpipeError):
    """Another run moved the publish root's LATEST after this run's evaluation read it: nothing is blessed.

    A rerun evaluates the candidates again against the new LATEST (the evaluate stage's fingerprint includes it).
    """

    exit_code = 4


class PublishRootDamaged(HubpipeError):
    """The publish root's LATEST (or the blessed version it leads to) names a version that cannot be read: the
    evaluation cannot compare with the last blessed model, so it stops rather than bless as if nothing were.

    Fixed by restoring the version or pointing LATEST at a complete one; nothing else in the run is wrong.
    """

    exit_code = 5
