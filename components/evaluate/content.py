"""What an evaluation shows in TensorBoard, per model: metrics, pictures, tables and the embedding projector."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from hubpipe.components.common.split_vectors import JoinedSplit, stored_test_split
from hubpipe.components.evaluate import visuals
from hubpipe.components.evaluate.blessing import Decision
from hubpipe.components.evaluate.candidates import TrainedModel
from hubpipe.components.evaluate.examples import images_by_id
from hubpipe.components.evaluate.layout import RUN_HPARAM
from hubpipe.components.evaluate.metrics import ClassificationMetrics
from hubpipe.components.evaluate.reference import TestSplit
from hubpipe.components.evaluate.tensorboard_logs import (
    EVALUATION_RUN,
    DashboardMetric,
    EvaluationRun,
    Projection,
    read_session_hparams,
    write_evaluation_run,
    write_experiment,
    write_session,
)
from hubpipe.components.train.layout import FEATURE_EXTRACTION

LOG = logging.getLogger(__name__)

#: Misclassified test images shown per model (the most confident mistakes first).
MAX_MISTAKES = 24
#: Test vectors shown in the projector per model (evenly spread over the split).
MAX_PROJECTED = 1000
SPRITE_SIDE = 48
#: The HParams dashboard's metrics in display order: TensorBoard ticks the first five.
DASHBOARD_METRICS = (
    DashboardMetric("test_accuracy", EVALUATION_RUN, "test accuracy"),
    DashboardMetric("test_macro_f1", EVALUATION_RUN, "test macro-F1"),
    DashboardMetric("test_log_loss", EVALUATION_RUN, "test log loss"),
    DashboardMetric("test_top5_accuracy", EVALUATION_RUN, "test top-5 accuracy"),
    DashboardMetric("blessed", EVALUATION_RUN, "blessed"),
    DashboardMetric("test_accuracy_low", EVALUATION_RUN, "test accuracy, 95% interval low"),
    DashboardMetric("test_accuracy_high", EVALUATION_RUN, "test accuracy, 95% interval high"),
    DashboardMetric("epoch_accuracy", "validation", "accuracy on the test split per epoch"),
    DashboardMetric("epoch_loss", "validation", "loss on the test split per epoch"),
    DashboardMetric("epoch_accuracy", "train", "training accuracy per epoch"),
    DashboardMetric("epoch_loss", "train", "training loss per epoch"),
)
#: (model name, picture name) -> picture; also saved as images/<model>/<picture>.png.
Pictures = dict[tuple[str, str], Image.Image]


def _mistake_rows(model: TrainedModel) -> list[int]:
    probabilities = model.predictions.probabilities
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != model.predictions.labels)
    confidence = probabilities[wrong, predicted[wrong]]
    return [int(row) for row in wrong[np.argsort(-confidence, kind="stable")][:MAX_MISTAKES]]


def _projected_rows(count: int) -> list[int]:
    if count <= MAX_PROJECTED:
        return list(range(count))
    return sorted({int(v) for v in np.linspace(0, count - 1, MAX_PROJECTED)})


def _test_vectors(tf: Any, model: TrainedModel, split: TestSplit) -> JoinedSplit | None:
    """The model's test feature vectors in the vector store, rows in the split's order; None when not stored."""
    space = model.info.get("vector_space")
    if model.info.get("mode") != FEATURE_EXTRACTION or not space:
        return None
    vectors = stored_test_split(tf, split.vector_store, str(space), split.ingest_dir, split.ids)
    if vectors is None:
        LOG.warning(
            "%s: test vectors not in the vector store (space %s); the projector is left out",
            model.name,
            str(space)[:12],
        )
    return vectors


def _projection(model: TrainedModel, stored: JoinedSplit, split: TestSplit, images: Mapping[str, bytes]) -> Projection:
    rows = _projected_rows(len(split.ids))
    names = split.class_names
    predicted = model.predictions.probabilities.argmax(axis=1)
    metadata = [
        (names[split.labels[r]], names[predicted[r]], "yes" if predicted[r] == split.labels[r] else "no", split.ids[r])
        for r in rows
    ]
    sheet = visuals.sprite([images.get(split.ids[r], b"") for r in rows], SPRITE_SIDE)
    return Projection(
        stored.vectors(np.array(rows)), ("label", "predicted", "correct", "id"), metadata, sheet, SPRITE_SIDE
    )


def _per_class_table(metrics: ClassificationMetrics) -> str:
    lines = ["| class | precision | recall | F1 | test images |", "|---|---|---|---|---|"]
    lines += [
        f"| {c.name} | {c.precision:.3f} | {c.recall:.3f} | {c.f1:.3f} | {c.support} |" for c in metrics.per_class
    ]
    return "\n".join(lines)


def _checks_table(model: str, decision: Decision) -> str:
    lines = [
        "| check | value | 95% interval | McNemar p | threshold | rule | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for check in (c for c in decision.checks if c.candidate == model):
        value = "-" if check.value is None else f"{check.value:+.4f}"
        interval = "-" if check.interval is None else str(check.interval)
        p_value = "-" if check.p_value is None else f"{check.p_value:.3g}"
        result = {True: "passed", False: "FAILED", None: check.detail}[check.passed]
        rule = check.rule or "-"
        lines.append(f"| {check.name} | {value} | {interval} | {p_value} | {check.threshold} | {rule} | {result} |")
    verdict = "**blessed**" if decision.blessed == model else "not blessed"
    return f"{verdict}\n\n" + "\n".join(lines)


def _accuracy_line(metrics: ClassificationMetrics) -> str:
    low, high = metrics.accuracy_interval
    right = round(metrics.accuracy * metrics.examples)
    return (
        f"test accuracy {metrics.accuracy:.4f} ({right}/{metrics.examples}), "
        f"95% Wilson interval [{low:.4f}, {high:.4f}]"
    )


def _write_sessions(tf: Any, folder: Path, models: list[TrainedModel], train_logs: Path, run_id: str) -> None:
    """One HParams session per model, and the experiment that declares the dashboard's columns."""
    sessions = {}
    for model in models:
        hparams = read_session_hparams(tf, train_logs / model.name) or {
            "model": model.name,
            "mode": str(model.info.get("mode", "")),
        }
        sessions[model.name] = {**hparams, RUN_HPARAM: run_id}
        write_session(tf, folder / model.name, sessions[model.name], f"{run_id}/{model.name}")
    names = sorted({name for hparams in sessions.values() for name in hparams})
    differing = {RUN_HPARAM} | {
        name for name in names if len({str(hparams.get(name)) for hparams in sessions.values()}) > 1
    }
    write_experiment(tf, folder, names, differing, DASHBOARD_METRICS)


def write_tensorboard(
    folder: Path,
    models: list[TrainedModel],
    *,
    metrics: Mapping[str, ClassificationMetrics],
    decision: Decision,
    split: TestSplit,
    train_logs: Path,
    run_id: str,
) -> Pictures:
    """Writes the evaluation's TensorBoard tree; returns the pictures drawn for it."""
    from hubpipe.pipeline.core.runtime import import_tensorflow

    tf = import_tensorflow()
    _write_sessions(tf, folder, models, train_logs, run_id)
    mistakes = {model.name: _mistake_rows(model) for model in models}
    vectors = {model.name: _test_vectors(tf, model, split) for model in models}
    wanted = {split.ids[row] for rows in mistakes.values() for row in rows}
    if any(v is not None for v in vectors.values()):
        wanted.update(split.ids[row] for row in _projected_rows(len(split.ids)))
    images = images_by_id(split.ingest_dir, wanted)
    pictures: Pictures = {}
    for model in models:
        model_metrics = metrics[model.name]
        matrix = visuals.confusion_matrix_image(np.array(model_metrics.confusion_matrix), split.class_names, model.name)
        grid = visuals.misclassified_grid(
            _mistakes(model, mistakes[model.name], split, images), f"{model.name}: mistakes"
        )
        pictures[(model.name, "confusion_matrix")] = matrix
        pictures[(model.name, "misclassified")] = grid
        texts = {"per_class": _accuracy_line(model_metrics) + "\n\n" + _per_class_table(model_metrics)}
        if any(check.candidate == model.name for check in decision.checks):
            texts["checks"] = _checks_table(model.name, decision)
        scalars = {
            "test_accuracy": model_metrics.accuracy,
            "test_accuracy_low": model_metrics.accuracy_interval[0],
            "test_accuracy_high": model_metrics.accuracy_interval[1],
            "test_top5_accuracy": model_metrics.top5_accuracy,
            "test_macro_f1": model_metrics.macro_f1,
            "test_log_loss": model_metrics.log_loss,
            "blessed": 1.0 if decision.blessed == model.name else 0.0,
        }
        model_vectors = vectors[model.name]
        projection = None if model_vectors is None else _projection(model, model_vectors, split, images)
        run = EvaluationRun(scalars, {"confusion_matrix": matrix, "misclassified": grid}, texts, projection)
        write_evaluation_run(tf, folder / model.name / EVALUATION_RUN, run)
    return pictures


def _mistakes(
    model: TrainedModel, rows: list[int], split: TestSplit, images: Mapping[str, bytes]
) -> list[visuals.Mistake]:
    probabilities = model.predictions.probabilities
    found = []
    for row in rows:
        predicted = int(probabilities[row].argmax())
        image = images.get(split.ids[row], b"")
        true_name, predicted_name = split.class_names[split.labels[row]], split.class_names[predicted]
        found.append(visuals.Mistake(image, true_name, predicted_name, float(probabilities[row, predicted])))
    return found
