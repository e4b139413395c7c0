"""Trains the tiny model in a subprocess that stalls after its first epoch's checkpoint, so a test can kill it.

Usage: python train_resume_worker.py INGEST_DIR BACKBONE_DIR OUTPUT_DIR CACHE_DIR EPOCHS
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import train_fixtures

from hubpipe.components.train.core import train_models
from hubpipe.components.train.session import TrainRequest
from hubpipe.pipeline.core.cache_root import cache_root
from hubpipe.pipeline.core.runtime import import_tensorflow

STALL_SECONDS = 120


def main(ingest_dir: str, backbone: str, output_dir: str, cache_dir: str, epochs: str) -> None:
    tf = import_tensorflow()
    save_epoch = tf.keras.callbacks.BackupAndRestore.on_epoch_end

    def save_then_stall(self, epoch, logs=None):
        save_epoch(self, epoch, logs)
        print(f"EPOCH_SAVED {epoch}", flush=True)
        time.sleep(STALL_SECONDS)

    tf.keras.callbacks.BackupAndRestore.on_epoch_end = save_then_stall
    config = train_fixtures.tiny_train_config(Path(backbone), epochs=int(epochs), baseline=False)
    request = TrainRequest(
        Path(ingest_dir), Path(output_dir), Path(cache_dir), config, train_fixtures.SCRATCH_SIZE, cache_root()
    )
    train_models(request)


if __name__ == "__main__":
    main(*sys.argv[1:])
