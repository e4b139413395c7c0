"""The names of a local run folder ``DIR``, and whether a folder is one: what the runner writes and the API,
the report and tracking read::

    DIR/.hubpipe-run           written when hubpipe first claims the folder: only then does it remove anything
    DIR/resolved_config.yaml   the configuration of the last run
    DIR/run.json               every stage's status, duration, artifacts and key results
    DIR/<stage>/               a stage's artifacts, with manifest.json written last
    DIR/cache/                 caches shared by the runs of this folder (checkpoints, snapshots)

How the folder is claimed and written is :mod:`hubpipe.pipeline.core.execution` and
:mod:`hubpipe.pipeline.local_runner`.
"""

from __future__ import annotations

from pathlib import Path

from hubpipe.pipeline.core.artifacts import read_json
from hubpipe.pipeline.core.locking import RUN_LOCK_FILE

#: The run folder of ``hubpipe run`` and ``hubpipe.run()`` when none is given.
DEFAULT_OUTPUT = "hubpipe-output"
#: A local run folder's record of its last run, and its configuration.
RUN_FILE = "run.json"
CONFIG_FILE = "resolved_config.yaml"
#: The file hubpipe writes into a folder when it first claims it: only in a folder that holds it does hubpipe
#: remove anything. A folder with what versions before the marker wrote (see :func:`is_run_folder`) is claimed
#: without asking.
RUN_MARKER = ".hubpipe-run"
#: The run folder's cache, shared by its runs, and the folders stages keep there: feature vectors (of versions
#: before the vector store, ``components/common/vector_store.py``), training checkpoints and decoded-image snapshots
#: (``components/train/session.py``), finished trainings (``components/train/trained.py``). Killed runs'
#: temporaries are looked for in these folders only.
CACHE_DIR = "cache"
CACHE_FOLDERS = ("embeddings", "checkpoints", "decoded", "trained")


def is_run_folder(folder: Path) -> bool:
    """True when hubpipe has claimed ``folder``: it holds :data:`RUN_MARKER`, or what an earlier version wrote
    first into a run folder (its run.json, or the process record in its lock file)."""
    if (folder / RUN_MARKER).is_file():
        return True
    return _json_with(folder / RUN_FILE, "stages") or _json_with(folder / RUN_LOCK_FILE, "pid", "started")


def _json_with(path: Path, *keys: str) -> bool:
    """True when the file at ``path`` holds a JSON object with ``keys``."""
    try:
        record = read_json(path)
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and all(key in record for key in keys)
