"""The evaluation's TensorBoard content, laid out to sit beside the train stage's logs of the same run.

Under the evaluate artifact folder::

    tensorboard/<model>/             the model's HParams session: the hyperparameters train logged for it, plus
                                     ``run`` (the evaluation id), in a session group named ``<run>/<model>``
    tensorboard/<model>/evaluation/  scalars (test_accuracy with its 95% interval test_accuracy_low and
                                     test_accuracy_high, test_top5_accuracy, test_macro_f1, test_log_loss,
                                     blessed), images (confusion matrix, misclassified test images), text
                                     (per-class metrics, checks) and the embedding projector (a checkpoint of
                                     the test feature vectors, metadata.tsv, sprite.png, projector_config.pbtxt)

The publish stage copies the run folders under train's ``logs/<model>/`` (``train/``, ``validation/``) and
this tree into one folder per run, so that each model's session gets the ``evaluation`` and ``validation``
groups of metrics. Train's own session (named after the model only) is replaced, so that models of the same
name in different runs stay separate rows. No HParams experiment is declared: TensorBoard then builds it from
the sessions of every run under its log folder (hyperparameters that differ first, metrics from the scalars),
where one declared experiment would stand for all runs. Every path inside is relative: the tree can be copied
anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

EVALUATION_RUN = "evaluation"
PROJECTOR_TENSOR = "embedding/.ATTRIBUTES/VARIABLE_VALUE"
HParamValue = str | int | float | bool
PROJECTOR_CHECKPOINT = "embedding.ckpt"
METADATA_FILE = "metadata.tsv"
SPRITE_FILE = "sprite.png"


@dataclass(frozen=True)
class Projection:
    """Test feature vectors with one metadata row each (columns named by ``columns``)."""

    features: np.ndarray  # float32 [n, d]
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]
    sprite: Image.Image | None = None
    sprite_side: int = 0


@dataclass(frozen=True)
class EvaluationRun:
    scalars: Mapping[str, float]
    images: Mapping[str, Image.Image] = field(default_factory=dict)
    texts: Mapping[str, str] = field(default_factory=dict)
    projection: Projection | None = None


def _plain(value: Any) -> HParamValue:
    """A ``google.protobuf.Value`` of an hparam as a Python value."""
    kind = value.WhichOneof("kind")
    if kind == "bool_value":
        return bool(value.bool_value)
    if kind == "number_value":
        number = float(value.number_value)
        return int(number) if number.is_integer() else number
    return str(value.string_value)


def read_session_hparams(tf: Any, folder: Path) -> dict[str, HParamValue] | None:
    """The hyperparameters a model's run folder logged (its HParams session start), or None."""
    from tensorboard.plugins.hparams import metadata

    found = None
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            for value in tf.compat.v1.Event.FromString(record.numpy()).summary.value:
                if value.tag == metadata.SESSION_START_INFO_TAG:
                    info = metadata.parse_session_start_info_plugin_data(value.metadata.plugin_data.content)
                    found = {name: _plain(v) for name, v in info.hparams.items()}
    return found


def write_session(tf: Any, folder: Path, hparams: Mapping[str, HParamValue], group_name: str) -> None:
    """One HParams session (a row of the dashboard) for the run folder ``folder``."""
    from tensorboard.plugins.hparams import api as hp

    folder.mkdir(parents=True, exist_ok=True)
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        hp.hparams(dict(hparams), trial_id=group_name)
    writer.close()


def _clean(value: str) -> str:
    return " ".join(str(value).split()) or "-"


def write_projection(tf: Any, folder: Path, projection: Projection) -> None:
    """A checkpoint holding the vectors as one variable, their metadata and the projector config."""
    from tensorboard.plugins import projector

    checkpoint = tf.train.Checkpoint(embedding=tf.Variable(projection.features, dtype=tf.float32))
    checkpoint.save(str(folder / PROJECTOR_CHECKPOINT))
    lines = ["\t".join(projection.columns)] + ["\t".join(_clean(v) for v in row) for row in projection.rows]
    (folder / METADATA_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = PROJECTOR_TENSOR
    embedding.metadata_path = METADATA_FILE
    if projection.sprite is not None:
        projection.sprite.save(folder / SPRITE_FILE, format="PNG")
        embedding.sprite.image_path = SPRITE_FILE
        embedding.sprite.single_image_dim.extend([projection.sprite_side, projection.sprite_side])
    projector.visualize_embeddings(str(folder), config)


def write_evaluation_run(tf: Any, folder: Path, run: EvaluationRun) -> None:
    """One model's evaluation run: scalars, images, texts and (when there are vectors) the projector."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        for tag, value in run.scalars.items():
            tf.summary.scalar(tag, float(value), step=0)
        for tag, image in run.images.items():
            tf.summary.image(tag, np.asarray(image.convert("RGB"))[None], step=0)
        for tag, text in run.texts.items():
            tf.summary.text(tag, text, step=0)
    writer.close()
    if run.projection is not None and len(run.projection.features):
        write_projection(tf, folder, run.projection)
