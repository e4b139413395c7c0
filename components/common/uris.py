"""URI schemes: which remote file systems hubpipe can read and write, checked before a run starts."""

from __future__ import annotations

from hubpipe.pipeline.core.errors import UsageError

#: Schemes ``tf.io.gfile`` serves in this installation (TensorFlow 2.16 has no s3:// without tensorflow-io).
GFILE_SCHEMES = ("gs", "hdfs", "ram")


def scheme(uri: str) -> str:
    """The lower-case scheme of ``uri`` (``gs`` for ``gs://b/x``), '' for a local path."""
    head, separator, _ = uri.partition("://")
    return head.lower() if separator else ""


def require_scheme(uri: str, setting: str, allowed: tuple[str, ...] = GFILE_SCHEMES) -> None:
    """Raises UsageError (one line, exit code 2) when ``uri`` has a scheme outside ``allowed``."""
    found = scheme(uri)
    if found and found not in allowed:
        choices = ", ".join(f"{name}://" for name in allowed)
        raise UsageError(f"{setting} {uri!r}: {found}:// is not supported (use a local path or {choices})")
