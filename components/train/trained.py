"""Finished end-to-end trainings kept across runs, so that a model is not trained again for a setting it does
not use (e.g. the from-scratch baseline when only ``train.epochs`` changes: it trains ``baseline_epochs``).

A model trained on images (the baseline, a fine-tuned model) is keyed like its checkpoints: by its name,
everything that determines its training (its ``identity``: data, image size, hyperparameters) and the training
code's version (:meth:`~hubpipe.components.train.session.Session.checkpoint_dir`). When it finishes, its weights
and its fit (history, seconds) are kept in ``<cache>/trained/<name>-<key>/`` with the SHA-256 of each file;
a later train stage whose model has the same key loads the weights instead of training, once the files match
their digests (a damaged entry is trained again). Only the last entry of each model name is kept.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from hubpipe.components.common.checked_files import digest_problem, sha256_file
from hubpipe.components.train.fitting import FitOutcome
from hubpipe.pipeline.core.artifacts import read_json, replace_dir, staging_dir, write_json_atomic

LOG = logging.getLogger(__name__)

#: The folder of the train stage's cache that holds finished trainings (see the run folder's CACHE_FOLDERS).
TRAINED_DIR = "trained"
RECORD_FILE = "trained.json"
WEIGHTS = "weights"  # the checkpoint prefix of ``model.save_weights``


def trained_dir(cache_dir: Path, name: str, key: str) -> Path:
    return Path(cache_dir) / TRAINED_DIR / f"{name}-{key[:16]}"


def load_trained(model: Any, folder: Path) -> FitOutcome | None:
    """The fit kept in ``folder`` with ``model``'s weights restored from it, or None when there is none (or it
    is damaged, which one log line says)."""
    try:
        record = read_json(folder / RECORD_FILE)
        files, history = dict(record["files"]), list(record["history"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    problems = [problem for name, digest in files.items() if (problem := digest_problem(folder / name, digest))]
    if problems or not files:
        LOG.info("%s: the kept training in %s is damaged (%s): training again", model.name, folder, problems[:1])
        return None
    try:
        model.load_weights(str(folder / WEIGHTS)).assert_existing_objects_matched().expect_partial()
    except (AssertionError, ValueError) as exc:
        LOG.info("%s: the kept training in %s does not fit the model (%s): training again", model.name, folder, exc)
        return None
    LOG.info("%s: trained before with the same data and settings: weights reused (%s)", model.name, folder.name)
    return FitOutcome(history, 0.0, None, reused=True)


def save_trained(model: Any, fit: FitOutcome, folder: Path) -> None:
    """Keeps ``model``'s weights and ``fit`` in ``folder`` (built aside, then renamed into place), and removes
    the earlier entries of the same model name."""
    staging = staging_dir(folder)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_weights(str(staging / WEIGHTS))
    files = {path.name: _synced_digest(path) for path in sorted(staging.iterdir())}
    write_json_atomic(staging / RECORD_FILE, {"files": files, "history": fit.history, "seconds": fit.seconds})
    replace_dir(staging, folder)
    name = folder.name.rsplit("-", 1)[0]
    for earlier in folder.parent.iterdir():
        if earlier != folder and earlier.name.rsplit("-", 1)[0] == name:
            shutil.rmtree(earlier, ignore_errors=True)


def _synced_digest(path: Path) -> str:
    """The file's SHA-256, once it is on disk."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
    return sha256_file(path)
