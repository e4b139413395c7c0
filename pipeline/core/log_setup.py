"""How a hubpipe process logs: the CLI and each Kubeflow task set it up the same way, once at start."""

from __future__ import annotations

import logging
import os
import sys
import warnings

#: Notices the libraries print on every run that say nothing about this run (shown with --debug).
KNOWN_NOISE = (
    "crcmod package not found",  # Beam's TFRecord checksums use google-crc32c, which is installed
)


class _DropKnownNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(KNOWN_NOISE)


def configure_logging(debug: bool) -> None:
    """hubpipe's own progress messages at INFO; other libraries' chatter only from WARNING (or with --debug)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s" if not debug else "%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.getLogger("hubpipe").setLevel(logging.DEBUG if debug else logging.INFO)
    if debug:
        return
    handler.addFilter(_DropKnownNoise())
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # deprecation notices from inside TF and TFDV
    # A failing Beam step logs its traceback, then raises: the command prints that error in one line.
    logging.getLogger("apache_beam").setLevel(logging.CRITICAL)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ start-up lines (CUDA plugin registration)
    warnings.filterwarnings("ignore", message="You are using a Python version", category=FutureWarning)
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
