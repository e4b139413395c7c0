"""The models of this run, as the train stage left them.

Under the train artifact folder, each model has ``models/<name>/`` with ``model.json`` (``kind``:
``"transfer"`` for a candidate, ``"scratch"`` for the from-scratch baseline), ``labels.txt`` and
``test_predictions.npz`` (``ids``, ``labels``, ``probabilities`` on the test split). Evaluate scores these
predictions instead of running the models again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from hubpipe.components.common.split_vectors import line_up
from hubpipe.components.train.layout import LABELS_FILE, MODEL_FILE, MODELS_DIR, PREDICTIONS_FILE, TRANSFER
from hubpipe.pipeline.core.artifacts import hash_files
from hubpipe.pipeline.core.errors import StageError


@dataclass(frozen=True)
class Predictions:
    """Test-split predictions, rows aligned: ids (str), labels (int), probabilities ``[n, classes]``."""

    ids: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray

    def aligned_to(self, ids: np.ndarray) -> Predictions:
        """The same predictions with rows in the order of ``ids``; raises StageError when sets differ."""
        if len(ids) == len(self.ids) and np.array_equal(ids, self.ids):
            return self
        order = line_up(self.ids, ids)
        if order is None or len(ids) != len(self.ids):
            known = set(self.ids.tolist())
            missing = [example_id for example_id in ids if example_id not in known]
            raise StageError(f"test predictions cover different examples (e.g. {(missing or list(self.ids))[0]!r})")
        return Predictions(self.ids[order], self.labels[order], self.probabilities[order])


@dataclass(frozen=True)
class TrainedModel:
    name: str
    kind: str
    folder: Path
    info: dict[str, Any]  # model.json
    key: str  # hash of every file in the folder: equal keys, equal models
    predictions: Predictions


def model_folders(train_dir: Path) -> list[Path]:
    """The model folders under a train artifact folder, by name."""
    return sorted(path.parent for path in (Path(train_dir) / MODELS_DIR).glob(f"*/{MODEL_FILE}"))


def model_key(folder: Path) -> str:
    """A content hash of a model folder; the published version records it to recognise the same model."""
    return hash_files([path for path in folder.rglob("*") if path.is_file()], folder)


def read_model_info(folder: Path) -> dict[str, Any]:
    try:
        info = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StageError(f"cannot read {folder / MODEL_FILE}: {exc}") from None
    if not isinstance(info, dict):
        raise StageError(f"{folder / MODEL_FILE} does not hold an object")
    return info


def candidate_keys(train_dir: Path) -> list[str]:
    """Keys of the candidate (transfer) models of a train artifact folder; [] when there is none."""
    return [model_key(folder) for folder in model_folders(train_dir) if read_model_info(folder).get("kind") == TRANSFER]


def read_predictions(source: Path | BinaryIO, num_classes: int, name: str = "") -> Predictions:
    """The ``test_predictions.npz`` that train writes, from a path or an open file (``name`` for messages)."""
    name = name or str(source)
    try:
        with np.load(source, allow_pickle=False) as data:
            predictions = Predictions(
                data["ids"].astype(str), data["labels"].astype(np.int64), data["probabilities"].astype(np.float64)
            )
    except (OSError, ValueError, KeyError) as exc:
        raise StageError(f"cannot read test predictions {name}: {exc}") from None
    if predictions.probabilities.shape != (len(predictions.ids), num_classes):
        raise StageError(
            f"{name}: probabilities of shape {predictions.probabilities.shape}, expected [n, {num_classes}]"
        )
    return predictions


def load_trained_model(folder: Path, class_names: list[str]) -> TrainedModel:
    """One model folder; raises StageError when it does not fit this run's classes."""
    info = read_model_info(folder)
    labels_file = folder / LABELS_FILE
    if labels_file.is_file():
        labels = [line for line in labels_file.read_text(encoding="utf-8").split("\n") if line]
        if labels != class_names:
            raise StageError(f"model {folder.name} was trained on other classes than the ingested examples")
    predictions = read_predictions(folder / PREDICTIONS_FILE, len(class_names))
    kind = str(info.get("kind", TRANSFER))
    return TrainedModel(str(info.get("name", folder.name)), kind, folder, info, model_key(folder), predictions)


def load_trained_models(train_dir: Path, class_names: list[str]) -> list[TrainedModel]:
    """Every model of the run, test predictions aligned to the first one's example order."""
    models = [load_trained_model(folder, class_names) for folder in model_folders(train_dir)]
    if not models:
        raise StageError(f"no trained models under {Path(train_dir) / MODELS_DIR}; run the train stage first")
    ids = models[0].predictions.ids
    return [
        TrainedModel(m.name, m.kind, m.folder, m.info, m.key, m.predictions.aligned_to(ids)) if i else m
        for i, m in enumerate(models)
    ]
