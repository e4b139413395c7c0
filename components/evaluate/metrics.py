"""Classification metrics from predicted probabilities, in numpy.

Conventions: precision of a class that is never predicted, and recall of a class without examples, are 0;
F1 is 0 when precision and recall are both 0; macro-F1 averages F1 over every class in ``labels.txt``.
Top-5 accuracy uses the 5 most probable classes (all of them when there are fewer than 5). The accuracy comes
with its 95% Wilson interval (see :mod:`.intervals`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hubpipe.components.evaluate.intervals import wilson_interval

#: Probabilities are clipped to [EPSILON, 1] before the logarithm of the log loss.
EPSILON = 1e-7
TOP_K = 5


@dataclass(frozen=True)
class ClassMetrics:
    name: str
    precision: float
    recall: float
    f1: float
    support: int  # test examples of this class


@dataclass(frozen=True)
class ClassificationMetrics:
    """What evaluate reports for one model on the test split."""

    examples: int
    accuracy: float
    accuracy_interval: tuple[float, float]  # 95%, Wilson
    top5_accuracy: float
    macro_f1: float
    log_loss: float
    per_class: tuple[ClassMetrics, ...]
    confusion_matrix: tuple[tuple[int, ...], ...]  # rows: true class, columns: predicted class

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["accuracy_interval"] = list(self.accuracy_interval)
        data["per_class"] = [asdict(item) for item in self.per_class]
        data["confusion_matrix"] = [list(row) for row in self.confusion_matrix]
        return data


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]`` as an int64 ``[num_classes, num_classes]`` matrix."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros(len(numerator)), where=denominator > 0)


def top_k_accuracy(labels: np.ndarray, probabilities: np.ndarray, k: int = TOP_K) -> float:
    k = min(k, probabilities.shape[1])
    top = np.argpartition(-probabilities, k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean negative log-probability of the true class."""
    chosen = probabilities[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(chosen, EPSILON, 1.0))))


def classification_metrics(
    labels: np.ndarray, probabilities: np.ndarray, class_names: list[str]
) -> ClassificationMetrics:
    """All metrics of one model: ``labels`` int ``[n]``, ``probabilities`` float ``[n, classes]``."""
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    num_classes = len(class_names)
    if probabilities.ndim != 2 or probabilities.shape != (len(labels), num_classes):
        raise ValueError(f"probabilities of shape {probabilities.shape} do not match {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError("no test examples to evaluate on")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels outside 0..{num_classes - 1}")
    matrix = confusion_matrix(labels, probabilities.argmax(axis=1), num_classes)
    hits = np.diag(matrix).astype(np.float64)
    precision = _safe_ratio(hits, matrix.sum(axis=0))
    recall = _safe_ratio(hits, matrix.sum(axis=1))
    f1 = _safe_ratio(2 * precision * recall, precision + recall)
    per_class = tuple(
        ClassMetrics(name, float(p), float(r), float(f), int(s))
        for name, p, r, f, s in zip(class_names, precision, recall, f1, matrix.sum(axis=1), strict=True)
    )
    right = int(hits.sum())
    interval = wilson_interval(right, len(labels))
    return ClassificationMetrics(
        examples=len(labels),
        accuracy=right / len(labels),
        accuracy_interval=(interval.low, interval.high),
        top5_accuracy=top_k_accuracy(labels, probabilities),
        macro_f1=float(f1.mean()),
        log_loss=log_loss(labels, probabilities),
        per_class=per_class,
        confusion_matrix=tuple(tuple(int(v) for v in row) for row in matrix),
    )
