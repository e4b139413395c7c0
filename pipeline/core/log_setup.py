"""How a hubpipe process logs, and which of the libraries' notices it hides.

The CLI and each Kubeflow task set logging up once at start (:func:`configure_logging`); the Python API sets it up
for the length of each call (:func:`call_logging`) and restores what it changed afterwards, so a notebook shows
the same progress on every call. Both hide the same library notices (:func:`quiet_libraries`) unless asked to
show everything (``--debug``, ``debug=True``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator

#: Notices the libraries log on every run that say nothing about this run (shown with --debug).
KNOWN_NOISE = (
    "crcmod package not found",  # Beam's TFRecord checksums use google-crc32c, which is installed
)
#: Library loggers and the lowest level of theirs that is shown: TensorFlow's deprecation notices and
#: "tf.function retracing" warnings, and a failing Beam step's traceback (the error is raised again anyway).
QUIET_LOGGERS = {"tensorflow": logging.ERROR, "apache_beam": logging.CRITICAL, "absl": logging.ERROR}
#: Python warnings hidden: (message start, category, module), as ``warnings.filterwarnings`` takes them.
QUIET_WARNINGS: tuple[tuple[str, type[Warning], str], ...] = (
    ("", FutureWarning, r"google\."),  # google-api-core & co. on this Python version, and their deprecations
    ("You are using a Python version", FutureWarning, ""),
    ("pkg_resources is deprecated", UserWarning, ""),
    ("", UserWarning, r"mlflow\."),  # e.g. MLflow's notes on type hints of the pyfunc model
    ("", UserWarning, r"apache_beam\."),  # e.g. Beam's interactive-environment notice in a notebook
    ("", DeprecationWarning, ""),
)
#: TensorFlow's C++ log level while quiet: 3 also hides the CUDA plugin's cuFFT/cuDNN/cuBLAS factory lines.
TF_CPP_QUIET = "3"


class _DropKnownNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(KNOWN_NOISE)


def quiet_libraries() -> Callable[[], None]:
    """Hides the libraries' notices (:data:`KNOWN_NOISE`, :data:`QUIET_LOGGERS`, :data:`QUIET_WARNINGS`, TensorFlow's
    C++ start-up lines); returns the function that restores what it changed."""
    caught = warnings.catch_warnings()
    caught.__enter__()
    for message, category, module in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(level, logging.getLogger(name).level))
    noise = _DropKnownNoise()
    # On the root logger itself too: a library's ``logging.warning(...)`` is a record of the root logger.
    filtered = [logging.getLogger(), *logging.getLogger().handlers, logging.lastResort]
    for item in filtered:
        if item is not None:
            item.addFilter(noise)
    previous_cpp = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_CPP_QUIET)  # read when TensorFlow is first imported

    def restore() -> None:
        caught.__exit__(None, None, None)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        for item in filtered:
            if item is not None:
                item.removeFilter(noise)
        if previous_cpp is None:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)

    return restore


def configure_logging(debug: bool) -> None:
    """hubpipe's own progress messages at INFO; other libraries' chatter only from WARNING (or with --debug)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s" if not debug else "%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.getLogger("hubpipe").setLevel(logging.DEBUG if debug else logging.INFO)
    if not debug:
        quiet_libraries()  # for the whole process: nothing to restore


@contextlib.contextmanager
def call_logging(debug: bool = False) -> Iterator[None]:
    """For the length of one API call: hubpipe's progress lines on stderr (its own handler on the ``hubpipe``
    logger, whatever a library did to the root logger during an earlier call) and, unless ``debug``, the
    libraries' notices hidden as the CLI hides them. Everything changed is restored on exit.

    A ``hubpipe`` logger the caller gave a handler of their own is left as it is.
    """
    pattern = "%(message)s" if not debug else "%(levelname)s %(name)s: %(message)s"
    logger, root = logging.getLogger("hubpipe"), logging.getLogger()
    own = None if logger.handlers else _stderr_handler(pattern)
    previous = logger.level, logger.propagate
    if own is not None:
        logger.addHandler(own)
        logger.propagate = False  # a library may set up the root logger during the run: no line twice
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    # Without a root handler, a library's first ``logging.warning(...)`` would install logging's basicConfig one
    # for good (lines like "WARNING:root:..."): a handler of the call's own, as the CLI has, prevents that.
    root_handler = None if root.handlers else _stderr_handler(pattern)
    if root_handler is not None:
        root.addHandler(root_handler)
    restore = quiet_libraries() if not debug else None
    try:
        yield
    finally:
        if restore is not None:
            restore()
        for owner, handler in ((logger, own), (root, root_handler)):
            if handler is not None:
                owner.removeHandler(handler)
        logger.level, logger.propagate = previous


def _stderr_handler(pattern: str) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(pattern))
    return handler
