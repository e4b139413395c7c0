"""TensorBoard below a notebook cell, started with the TensorBoard of the kernel's own environment.

TensorBoard's notebook extension (``%tensorboard``, :func:`tensorboard.notebook.start`) runs the program named
``tensorboard`` found on PATH, or the one ``$TENSORBOARD_BINARY`` names. A kernel started from a virtual
environment's python does not put the environment's ``bin`` folder on PATH, so the extension finds no
TensorBoard, or another environment's. :func:`show_tensorboard` names a launcher that runs
``<the kernel's python> -m tensorboard.main`` instead, for the length of the call.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

from hubpipe.pipeline.core.artifacts import write_text_atomic
from hubpipe.pipeline.core.cache_root import writable_cache_root

#: The variable TensorBoard's notebook extension reads the program to start from.
BINARY_VARIABLE = "TENSORBOARD_BINARY"


def tensorboard_launcher(python: str = sys.executable) -> Path:
    """An executable script in hubpipe's cache folder that runs TensorBoard with ``python`` (one per interpreter)."""
    key = hashlib.sha256(python.encode("utf-8")).hexdigest()[:16]
    path = writable_cache_root() / "bin" / f"tensorboard-{key}"
    script = f'#!/bin/sh\nexec {shlex.quote(python)} -m tensorboard.main "$@"\n'
    if not path.is_file() or path.read_text(encoding="utf-8") != script:
        write_text_atomic(path, script)
    path.chmod(0o755)
    return path


@contextlib.contextmanager
def environment_tensorboard() -> Iterator[None]:
    """``$TENSORBOARD_BINARY`` set to :func:`tensorboard_launcher` (unless the user set it), then restored."""
    if os.environ.get(BINARY_VARIABLE):
        yield
        return
    os.environ[BINARY_VARIABLE] = str(tensorboard_launcher())
    try:
        yield
    finally:
        os.environ.pop(BINARY_VARIABLE, None)


def show_tensorboard(logdir: str | Path, port: int = 0) -> None:
    """Starts TensorBoard on ``logdir`` (or reuses one already serving it) and shows it below the notebook cell;
    ``port`` 0 picks a free port. Outside a notebook it prints where TensorBoard listens."""
    from tensorboard import notebook

    with environment_tensorboard():
        notebook.start(f"--logdir {shlex.quote(str(logdir))} --port {int(port)}")
