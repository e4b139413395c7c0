"""Classification metrics computed with numpy, against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hubpipe.components.evaluate.metrics import classification_metrics, confusion_matrix, log_loss, top_k_accuracy

NAMES = ["a", "b", "c"]


def one_hot(predicted: list[int], confidence: float = 0.8) -> np.ndarray:
    probabilities = np.full((len(predicted), 3), (1 - confidence) / 2)
    probabilities[np.arange(len(predicted)), predicted] = confidence
    return probabilities


def test_metrics_match_a_hand_computed_example() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = [0, 0, 1, 1, 0, 1]  # class c is never predicted
    metrics = classification_metrics(labels, one_hot(predicted), NAMES)

    assert metrics.examples == 6
    assert metrics.accuracy == pytest.approx(3 / 6)
    assert metrics.confusion_matrix == ((2, 1, 0), (1, 1, 0), (0, 1, 0))
    a, b, c = metrics.per_class
    assert (a.precision, a.recall) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert (b.precision, b.recall) == (pytest.approx(1 / 3), pytest.approx(1 / 2))
    assert b.f1 == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert (c.precision, c.recall, c.f1, c.support) == (0.0, 0.0, 0.0, 1)
    assert metrics.macro_f1 == pytest.approx((a.f1 + b.f1 + 0.0) / 3)
    true_probabilities = [0.8, 0.8, 0.1, 0.8, 0.1, 0.1]
    assert metrics.log_loss == pytest.approx(-np.mean(np.log(true_probabilities)))


def test_to_dict_is_plain_json_data() -> None:
    data = classification_metrics(np.array([0, 1, 2]), one_hot([0, 1, 1]), NAMES).to_dict()
    assert data["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 1, 0]]
    assert data["per_class"][2] == {"name": "c", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert set(data) >= {"accuracy", "top5_accuracy", "macro_f1", "log_loss"}


def test_top_k_uses_every_class_when_there_are_fewer_than_k() -> None:
    labels = np.array([2, 2])
    probabilities = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]])
    assert top_k_accuracy(labels, probabilities, k=5) == 1.0
    assert top_k_accuracy(labels, probabilities, k=1) == 0.5
    assert top_k_accuracy(labels, probabilities, k=2) == 0.5


def test_top5_counts_a_label_in_the_top_five_of_many_classes() -> None:
    probabilities = np.tile(np.linspace(1.0, 0.1, 10), (2, 1))  # class 0 most likely, class 9 least
    assert top_k_accuracy(np.array([4, 5]), probabilities) == 0.5


def test_log_loss_is_finite_for_a_zero_probability() -> None:
    value = log_loss(np.array([1]), np.array([[1.0, 0.0]]))
    assert math.isfinite(value) and value > 10


def test_confusion_matrix_counts_repeated_pairs() -> None:
    matrix = confusion_matrix(np.array([1, 1, 1, 0]), np.array([0, 0, 1, 0]), 2)
    assert matrix.tolist() == [[1, 0], [2, 1]]


@pytest.mark.parametrize(
    ("labels", "probabilities", "message"),
    [
        (np.array([0, 1]), np.ones((3, 3)) / 3, "do not match"),
        (np.array([0, 3]), np.ones((2, 3)) / 3, "labels outside"),
        (np.array([], dtype=int), np.ones((0, 3)), "no test examples"),
    ],
)
def test_bad_inputs_are_refused(labels: np.ndarray, probabilities: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        classification_metrics(labels, probabilities, NAMES)
