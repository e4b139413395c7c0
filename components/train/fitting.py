"""Keras training that survives being killed: checkpoints per epoch, resumption, and a complete history.

Each model trains with ``tf.keras.callbacks.BackupAndRestore`` in a checkpoint folder keyed by the model's
fingerprint (under the stage's cache folder, which outlives a killed run). A rerun of the same model finds
the last completed epoch there and continues from the next one. The per-epoch metrics are written next to
the checkpoint after every epoch, so the history of the finished model covers the epochs before the kill
too. The folder is removed once training completes.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubpipe.pipeline.core.artifacts import read_json, write_json_atomic
from hubpipe.pipeline.core.crashpoints import crash_point
from hubpipe.pipeline.core.errors import StageError

LOG = logging.getLogger(__name__)

HISTORY_FILE = "history.json"
BACKUP_DIR = "backup"

Metrics = dict[str, float]


@dataclass(frozen=True)
class FitOutcome:
    """One training run: per-epoch metrics (epochs numbered from 0), seconds spent, and where it resumed."""

    history: list[dict[str, float]]
    seconds: float
    resumed_from_epoch: int | None  # the first epoch this process trained, when earlier ones were restored
    started: str = ""  # UTC ISO-8601 time ``model.fit`` began (in this process, when it resumed)
    finished: str = ""  # UTC ISO-8601 time it returned
    reused: bool = False  # the weights of an earlier run's identical training (see .trained), not trained now


def utc_now() -> str:
    """The current UTC time in ISO-8601, to the millisecond (what experiment trackers take as start/end)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class _EpochRecorder:
    """Keeps every finished epoch's metrics in a JSON file, so that a resumed run knows the earlier ones."""

    def __init__(self, path: Path, label: str, epochs: int):
        self.path, self.label, self.epochs = path, label, epochs
        self.first_epoch: int | None = None
        try:
            self.entries: dict[str, Metrics] = dict(read_json(path))
        except (OSError, ValueError, TypeError):
            self.entries = {}

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self.first_epoch is None:
            self.first_epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        metrics = {name: float(value) for name, value in (logs or {}).items()}
        if not all(math.isfinite(value) for value in metrics.values()):
            raise StageError(
                f"{self.label}: training diverged at epoch {epoch + 1} ({metrics}); lower the learning rate"
            )
        self.entries[str(epoch)] = metrics
        write_json_atomic(self.path, self.entries)
        shown = "  ".join(f"{name} {value:.4f}" for name, value in metrics.items())
        LOG.info("%s epoch %d/%d: %s", self.label, epoch + 1, self.epochs, shown)

    def history(self, first: int, last: int) -> list[dict[str, float]]:
        missing = [epoch for epoch in range(first, last) if str(epoch) not in self.entries]
        if missing:
            raise StageError(f"{self.label}: no metrics recorded for epoch {missing[0] + 1}")
        return [{"epoch": epoch, **self.entries[str(epoch)]} for epoch in range(first, last)]


def fit_resumable(
    tf: Any,
    model: Any,
    train_data: Any,
    *,
    label: str,
    epochs: int,
    checkpoint_dir: Path,
    validation_data: Any = None,
    validate: Callable[[], Metrics] | None = None,
    initial_epoch: int = 0,
) -> FitOutcome:
    """``model.fit`` from ``initial_epoch`` to ``epochs`` with resumable checkpoints in ``checkpoint_dir``.

    ``validate`` computes extra validation metrics after each epoch (e.g. on cached test vectors) when the
    validation data cannot go through ``model`` itself.
    """
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    recorder = _EpochRecorder(checkpoint_dir / HISTORY_FILE, label, epochs)
    callbacks = []
    if validate is not None:
        callbacks.append(tf.keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: logs.update(validate())))
    # The metrics are recorded before the checkpoint is saved: an epoch restored from a checkpoint always has them.
    callbacks += [
        tf.keras.callbacks.LambdaCallback(on_epoch_begin=recorder.on_epoch_begin, on_epoch_end=recorder.on_epoch_end),
        tf.keras.callbacks.BackupAndRestore(str(checkpoint_dir / BACKUP_DIR)),
        tf.keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: crash_point("train.after_checkpoint")),
    ]
    started, started_at = time.monotonic(), utc_now()
    model.fit(
        train_data,
        epochs=epochs,
        initial_epoch=initial_epoch,
        validation_data=validation_data,
        callbacks=callbacks,
        verbose=0,
    )
    seconds, finished_at = time.monotonic() - started, utc_now()
    resumed = recorder.first_epoch if recorder.first_epoch not in (None, initial_epoch) else None
    if resumed is not None:
        LOG.info("%s resumed from its checkpoint at epoch %d", label, resumed + 1)
    history = recorder.history(initial_epoch, epochs)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return FitOutcome(history, seconds, resumed, started_at, finished_at)
