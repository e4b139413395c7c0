"""hubpipe: transfer learning for image classification as a pipeline of TFX-style stages.

The Python API, for notebooks and scripts (see :mod:`hubpipe.pipeline.api`)::

    import hubpipe

    run = hubpipe.run(epochs=3)          # what `hubpipe run` does; returns a Run
    run.models                           # one row per model (pandas)
    run.predict(["cat.jpg"])             # the blessed model's top classes
    hubpipe.compare(run, hubpipe.load("other-run"))

This file is installed as ``hubpipe/__init__.py`` (setup.py maps the ``hubpipe`` package onto this folder);
the names are imported on first use, so that ``import hubpipe`` and ``hubpipe --help`` stay instant.
"""

from __future__ import annotations

import importlib
from typing import Any

from hubpipe.pipeline.core.version import __version__

#: The exceptions the API raises (one hierarchy: see :mod:`hubpipe.pipeline.core.errors`).
ERRORS = (
    "HubpipeError",
    "ConfigError",
    "UsageError",
    "DataError",
    "DataRejected",
    "StageError",
    "PublishConflict",
    "PublishRootDamaged",
)
__all__ = [
    "ConfigError",
    "DataError",
    "DataRejected",
    "HubpipeError",
    "PublishConflict",
    "PublishRootDamaged",
    "Published",
    "Run",
    "StageError",
    "UsageError",
    "__version__",
    "compare",
    "load",
    "load_published",
    "run",
]

#: The public names and the module that defines them.
_API = dict.fromkeys(("run", "load", "compare", "Run", "load_published", "Published"), "hubpipe.pipeline.api")
_API.update(dict.fromkeys(ERRORS, "hubpipe.pipeline.core.errors"))


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'hubpipe' has no attribute {name!r}")
