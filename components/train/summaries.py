"""TensorBoard logs: one run folder per model with per-epoch scalars and its hyperparameters.

Layout under ``logs/`` (the names Keras' TensorBoard callback uses, so the usual dashboards apply)::

    logs/<model>/train/        epoch_loss, epoch_accuracy per epoch
    logs/<model>/validation/   epoch_loss, epoch_accuracy per epoch (on the test split)
    logs/<model>/              the HParams of the model (backbone, mode, learning rate, epochs, ...)
    logs/                      the HParams experiment: which hyperparameters and metrics to tabulate

The logs are written from the recorded history once a model has finished, so that a model whose training
was resumed after a kill still has every epoch in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HParamValue = str | int | float | bool

#: The hyperparameters every model logs; the HParams dashboard tabulates these.
HPARAM_NAMES = (
    "model",
    "backbone",
    "mode",
    "learning_rate",
    "epochs",
    "batch_size",
    "train_images_per_class",
    "augment",
)
#: Keras metric name -> TensorBoard tag.
_TAGS = {"loss": "epoch_loss", "accuracy": "epoch_accuracy"}


def write_model_logs(
    tf: Any, log_dir: Path, history: Sequence[Mapping[str, float]], hparams: Mapping[str, HParamValue]
) -> None:
    """Writes a model's per-epoch scalars (train and validation) and its HParams into ``log_dir``."""
    from tensorboard.plugins.hparams import api as hp

    writers = {
        "": tf.summary.create_file_writer(str(log_dir / "train")),
        "val_": tf.summary.create_file_writer(str(log_dir / "validation")),
    }
    for prefix, writer in writers.items():
        with writer.as_default():
            for entry in history:
                for metric, tag in _TAGS.items():
                    if prefix + metric in entry:
                        tf.summary.scalar(tag, entry[prefix + metric], step=int(entry["epoch"]))
        writer.close()
    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        hp.hparams(dict(hparams), trial_id=log_dir.name)
    writer.close()


def write_experiment(tf: Any, logs_root: Path) -> None:
    """Declares the hyperparameters and metrics of the HParams dashboard at the root of the logs."""
    from tensorboard.plugins.hparams import api as hp

    metrics = [
        hp.Metric("epoch_accuracy", group="validation", display_name="test accuracy"),
        hp.Metric("epoch_loss", group="validation", display_name="test loss"),
        hp.Metric("epoch_accuracy", group="train", display_name="train accuracy"),
    ]
    writer = tf.summary.create_file_writer(str(logs_root))
    with writer.as_default():
        hp.hparams_config(hparams=[hp.HParam(name) for name in HPARAM_NAMES], metrics=metrics)
    writer.close()
