"""What every model of a train run shares (data, device plan, folders) and how a finished model is written.

A model folder ``models/<name>/`` holds ``serving/``, ``head/`` (transfer models trained on cached vectors),
``labels.txt``, ``model.json``, ``test_predictions.npz`` and, when asked, TFLite files; its TensorBoard run is
``logs/<name>/``. See :mod:`.export` and :mod:`.summaries` for the formats.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hubpipe.components.common.split_vectors import SplitKeys
from hubpipe.components.common.vector_store import store_location
from hubpipe.components.train import export, layout
from hubpipe.components.train.devices import DevicePlan
from hubpipe.components.train.fitting import FitOutcome, fit_resumable
from hubpipe.components.train.inputs import AUTOTUNE, SplitData, image_dataset
from hubpipe.components.train.layout import (
    FEATURE_EXTRACTION,
    LOGS_DIR,
    MODELS_DIR,
)
from hubpipe.components.train.summaries import write_model_logs
from hubpipe.components.train.trained import load_trained, save_trained, trained_dir
from hubpipe.pipeline.core.artifacts import stable_hash, write_json_atomic
from hubpipe.pipeline.core.config import DataConfig, TrainConfig

LOG = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
#: Decoded-image snapshots of splits too large for ``train.decode_cache_mb``, under the stage's cache folder.
DECODED_DIR = "decoded"
MIB = 1024**2
SHUFFLE_BUFFER_IMAGES = 1000


def decoded_once(tf: Any, dataset: Any, decoded_bytes: int, budget_bytes: int, snapshot_dir: Path) -> Any:
    """``dataset`` of decoded images, decoded in its first pass only: in memory within the budget, else on disk.

    Within ``budget_bytes`` the first epoch fills an in-memory cache that later epochs read. Above it the
    decoded images go to a ``tf.data`` snapshot in ``snapshot_dir`` (under the stage's cache folder, keyed by
    the split's content and the image size), written in the first epoch and read afterwards, also by later
    runs over the same data. Either way every epoch sees the same float32 images as without a cache.
    """
    if decoded_bytes <= budget_bytes:
        return dataset.cache()
    LOG.info(
        "decoded images (%.0f MiB) exceed train.decode_cache_mb: snapshot in %s", decoded_bytes / MIB, snapshot_dir
    )
    snapshot_dir.mkdir(parents=True, exist_ok=True)
    # One shard: the snapshot is read back in the order it was written, so shuffling gives the same batches.
    return dataset.snapshot(str(snapshot_dir), shard_func=lambda *_: tf.constant(0, tf.int64))


@dataclass(frozen=True)
class TrainRequest:
    """Everything the train core needs, as plain paths and values."""

    ingest_dir: Path  # the ingest stage's artifact folder (examples/, labels.txt)
    output_dir: Path  # where models/, logs/ and summary.json go
    cache_dir: Path  # outlives runs: checkpoints/ and decoded/
    train: TrainConfig
    image_size: int  # side of the images the from-scratch baseline sees
    cache_root: Path  # hubpipe's cache folder: TFLite conversions of the backbones, shared by every run
    code_version: str = ""  # identifies the training code, so checkpoints of other code are not resumed
    max_pixels: int = DataConfig.max_pixels  # the serving model refuses larger images before decoding them
    beam_args: tuple[str, ...] = ()  # Beam pipeline options of the extraction job (as for ingest)


@dataclass(frozen=True)
class DatasetInfo:
    """The ingested dataset as training sees it."""

    class_names: list[str]
    train: SplitData
    test: SplitData
    train_class_counts: dict[str, int]
    train_keys: SplitKeys  # content keys and labels, in file order
    test_keys: SplitKeys  # content keys, labels and ids, in file order (the order test predictions are written in)

    @property
    def test_labels(self) -> np.ndarray:
        return self.test_keys.labels

    @property
    def test_ids(self) -> np.ndarray:
        assert self.test_keys.ids is not None
        return self.test_keys.ids

    def keys(self, split: SplitData) -> SplitKeys:
        return self.train_keys if split.name == "train" else self.test_keys

    @property
    def num_test(self) -> int:
        return len(self.test_labels)

    @property
    def num_train(self) -> int:
        return sum(self.train_class_counts.values())

    def count(self, split: SplitData) -> int:
        """The number of examples of ``split`` (train or test)."""
        return self.num_train if split.name == "train" else self.num_test

    @property
    def train_images_per_class(self) -> int:
        return round(self.num_train / len(self.class_names))


@dataclass(frozen=True)
class ModelResult:
    """A finished model, as it appears in summary.json."""

    name: str
    kind: str  # "transfer" or "scratch"
    mode: str  # "feature_extraction", "fine_tuned" or "from_scratch"
    backbone: str | None
    test_accuracy: float
    train_seconds: float
    feature_extraction_seconds: float
    epochs: int
    resumed_from_epoch: int | None
    train_started: str  # UTC ISO-8601: when its training (model.fit) began and ended
    train_finished: str


@dataclass
class ModelRecord:
    """What :meth:`Session.write_model` needs to know about a trained model besides the model itself."""

    name: str
    kind: str
    mode: str
    input_size: int
    hparams: dict[str, Any]
    fit: FitOutcome
    backbone: Any = None  # BackboneSpec of transfer models
    backbone_fingerprint: str | None = None
    vector_space: str | None = None
    feature_extraction_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Session:
    """The shared state of one train run."""

    tf: Any
    request: TrainRequest
    plan: DevicePlan
    strategy: Any
    data: DatasetInfo
    cores: int = 1  # usable cores (see :mod:`.threads`): the TFLite interpreter's threads

    @property
    def config(self) -> TrainConfig:
        return self.request.train

    @property
    def vector_store(self) -> str:
        """The vector store's location (``train.vector_store``, else the cache folder's ``vectors/``)."""
        return store_location(self.config.vector_store, self.request.cache_root)

    @property
    def models_dir(self) -> Path:
        return self.request.output_dir / MODELS_DIR

    @property
    def logs_dir(self) -> Path:
        return self.request.output_dir / LOGS_DIR

    def model_key(self, name: str, identity: dict[str, Any]) -> str:
        """What identifies a model's training: its name, everything that determines it, the training code."""
        return stable_hash({"model": name, "identity": identity, "code": self.request.code_version})

    def checkpoint_dir(self, name: str, identity: dict[str, Any]) -> Path:
        """Where a model's resumable checkpoints live: keyed by everything that determines its training."""
        return self.request.cache_dir / CHECKPOINTS_DIR / f"{name}-{self.model_key(name, identity)[:16]}"

    def seed_everything(self) -> None:
        self.tf.keras.utils.set_random_seed(self.config.seed)

    def image_batches(self, split: SplitData, size: int, shuffle: bool) -> Any:
        """Batches of ``(image, label)``; with ``train.decode_cache`` decoded once per run (:func:`decoded_once`)."""
        count = self.data.count(split)
        dataset = image_dataset(self.tf, split, size)
        if self.config.decode_cache:
            folder = self.request.cache_dir / DECODED_DIR / f"{split.fingerprint[:16]}-{size}"
            dataset = decoded_once(
                self.tf, dataset, count * size * size * 3 * 4, self.config.decode_cache_mb * MIB, folder
            )
        if shuffle:
            dataset = dataset.shuffle(min(count, SHUFFLE_BUFFER_IMAGES), seed=self.config.seed)
        return dataset.batch(self.config.batch_size).prefetch(AUTOTUNE)

    def fit_on_images(
        self, model: Any, name: str, size: int, *, epochs: int, identity: dict[str, Any], initial_epoch: int = 0
    ) -> tuple[FitOutcome, np.ndarray]:
        """Trains ``model`` end to end on ``size`` px images (resumable), validating on the test split each epoch.

        Returns the fit and the model's test-split probabilities, rows in ``data.test_ids`` order.
        """
        test_data = self.image_batches(self.data.test, size, shuffle=False)
        kept = trained_dir(self.request.cache_dir, name, self.model_key(name, identity))
        fit = load_trained(model, kept)
        if fit is None:
            fit = fit_resumable(
                self.tf,
                model,
                self.image_batches(self.data.train, size, shuffle=True),
                label=name,
                epochs=epochs,
                initial_epoch=initial_epoch,
                checkpoint_dir=self.checkpoint_dir(name, identity),
                validation_data=test_data,
            )
            save_trained(model, fit, kept)
        return fit, model.predict(test_data, verbose=0)

    @contextlib.contextmanager
    def float32_policy(self) -> Iterator[None]:
        """Layers created inside keep float32 (a loaded backbone must see the dtype it was saved with)."""
        policy = self.tf.keras.mixed_precision.global_policy()
        self.tf.keras.mixed_precision.set_global_policy("float32")
        try:
            yield
        finally:
            self.tf.keras.mixed_precision.set_global_policy(policy)

    def hparams(self, **values: Any) -> dict[str, Any]:
        """The hyperparameters every model records, updated with ``values``."""
        return {
            "learning_rate": self.config.learning_rate,
            "epochs": self.config.epochs,
            "batch_size": self.config.batch_size,
            "seed": self.config.seed,
            "augment": self.config.augment,
            "optimizer": "adam",
            "precision": self.plan.precision,
            **values,
        }

    def write_model(
        self,
        record: ModelRecord,
        classifier: Any,
        *,
        head: Any | None,
        probabilities: np.ndarray,
        labels: np.ndarray,
        ids: np.ndarray,
    ) -> ModelResult:
        """Writes the model folder and TensorBoard run of a trained model; returns its summary row."""
        tf, folder = self.tf, self.models_dir / record.name
        folder.mkdir(parents=True, exist_ok=True)
        export.write_labels(folder / layout.LABELS_FILE, self.data.class_names)
        export.save_serving_model(
            tf,
            classifier,
            class_names=self.data.class_names,
            input_size=record.input_size,
            path=folder / layout.SERVING_DIR,
            labels_file=folder / layout.LABELS_FILE,
            max_pixels=self.request.max_pixels,
        )
        if head is not None:
            export.save_head(head, folder / layout.HEAD_DIR)
        export.save_predictions(folder / layout.PREDICTIONS_FILE, ids, labels, probabilities)
        files = export.export_tflite(tf, classifier, folder) if self.config.export_tflite else {}
        accuracy = float(np.mean(np.argmax(probabilities, axis=1) == labels)) if len(labels) else 0.0
        write_json_atomic(folder / layout.MODEL_FILE, self._model_json(record, accuracy, files))
        write_model_logs(tf, self.logs_dir / record.name, record.fit.history, self._logged_hparams(record))
        LOG.info("%s: test accuracy %.4f (%d test images)", record.name, accuracy, len(labels))
        return ModelResult(
            name=record.name,
            kind=record.kind,
            mode=record.mode,
            backbone=record.backbone.name if record.backbone is not None else None,
            test_accuracy=accuracy,
            train_seconds=round(record.fit.seconds, 3),
            feature_extraction_seconds=round(record.feature_extraction_seconds, 3),
            epochs=len(record.fit.history),
            resumed_from_epoch=record.fit.resumed_from_epoch,
            train_started=record.fit.started,
            train_finished=record.fit.finished,
        )

    def _model_json(self, record: ModelRecord, accuracy: float, files: dict[str, str]) -> dict[str, Any]:
        backbone = dataclasses.asdict(record.backbone) if record.backbone is not None else None
        return {
            "name": record.name,
            "kind": record.kind,
            "mode": record.mode,
            "backbone": backbone,
            "backbone_fingerprint": record.backbone_fingerprint,
            "vector_space": record.vector_space,
            "input_size": record.input_size,
            "class_names": self.data.class_names,
            "hparams": record.hparams,
            "history": record.fit.history,
            "test_accuracy": accuracy,
            "train_seconds": round(record.fit.seconds, 3),
            "train_started": record.fit.started,
            "train_finished": record.fit.finished,
            "feature_extraction_seconds": round(record.feature_extraction_seconds, 3),
            "resumed_from_epoch": record.fit.resumed_from_epoch,
            "reused_training": record.fit.reused,
            "num_train_examples": self.data.num_train,
            "train_images_per_class": self.data.train_images_per_class,
            "train_class_counts": self.data.train_class_counts,
            "device": self.plan.device,
            "precision": self.plan.precision,
            "files": {
                "serving": layout.SERVING_DIR,
                "head": layout.HEAD_DIR if record.mode == FEATURE_EXTRACTION else None,
                "labels": layout.LABELS_FILE,
                "test_predictions": layout.PREDICTIONS_FILE,
                **files,
            },
            **record.extra,
        }

    def _logged_hparams(self, record: ModelRecord) -> dict[str, Any]:
        return {
            "model": record.name,
            "backbone": record.backbone.name if record.backbone is not None else "none",
            "mode": record.mode,
            "learning_rate": float(record.hparams["learning_rate"]),
            "epochs": int(record.hparams["epochs"]),
            "batch_size": int(record.hparams["batch_size"]),
            "train_images_per_class": self.data.train_images_per_class,
            "augment": bool(record.hparams.get("augment", False)),
        }
