"""The evaluation's TensorBoard content, laid out to sit beside the train stage's logs of the same run.

Under the evaluate artifact folder::

    tensorboard/                     the HParams experiment: the dashboard's columns
    tensorboard/<model>/             the model's HParams session: the hyperparameters train logged for it, plus
                                     ``run`` (the evaluation id), in a session group named ``<run>/<model>``
                                     (publish renames both after the run name: components/publish/run_names.py)
    tensorboard/<model>/evaluation/  scalars (test_accuracy with its 95% interval test_accuracy_low and
                                     test_accuracy_high, test_top5_accuracy, test_macro_f1, test_log_loss,
                                     blessed), images (confusion matrix, misclassified test images), text
                                     (per-class metrics, checks) and the embedding projector (a checkpoint of
                                     the test feature vectors, metadata.tsv, sprite.png, projector_config.pbtxt)

The publish stage copies the run folders under train's ``logs/<model>/`` (``train/``, ``validation/``) and
this tree into one folder per run (named after the run), so that each model's session gets the ``evaluation``
and ``validation`` groups of metrics. Train's own session (named after the model only) is replaced, so that
models of the same name in different runs stay separate rows.

At the root of the tree, the HParams experiment is declared (:func:`write_experiment`): the dashboard's
metrics with the test metrics first, so that they are the columns TensorBoard shows without asking, and the
hyperparameters of the sessions plus ``run``. Undeclared, TensorBoard lists metrics alphabetically and ticks
the first five (``blessed``, ``epoch_accuracy``, ...: the test metrics were never among them). TensorBoard
uses one declared experiment for a whole log folder (the first it finds); every run declares the same one as
long as the models log the same hyperparameter names (train's ``HPARAM_NAMES``). Every path inside is
relative: the tree can be copied anywhere.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
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


@dataclass(frozen=True)
class DashboardMetric:
    """A metric of the HParams dashboard: a scalar ``tag`` in the session's subfolder ``group``."""

    tag: str
    group: str
    display_name: str


def write_experiment(
    tf: Any, folder: Path, hparam_names: Sequence[str], differing: Collection[str], metrics: Sequence[DashboardMetric]
) -> None:
    """Declares the HParams dashboard's columns in ``folder``: the hyperparameters ``hparam_names`` and the
    ``metrics`` in that order (TensorBoard ticks the first five metrics, and sorts hyperparameters marked as
    differing before the others, ticking the first five)."""
    from tensorboard.plugins.hparams import api as hp
    from tensorboard.plugins.hparams import plugin_data_pb2, summary_v2

    declared = [hp.Metric(m.tag, group=m.group, display_name=m.display_name) for m in metrics]
    summary = summary_v2.hparams_config_pb([hp.HParam(name) for name in hparam_names], declared)
    plugin_data = summary.value[0].metadata.plugin_data
    content = plugin_data_pb2.HParamsPluginData.FromString(plugin_data.content)
    for info in content.experiment.hparam_infos:
        info.differs = info.name in differing
    plugin_data.content = content.SerializeToString()
    folder.mkdir(parents=True, exist_ok=True)
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=0)
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
