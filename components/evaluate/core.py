"""The evaluate core: an :class:`EvaluateRequest` in, every model of a run scored on the test split, compared
and blessed, the folder of :mod:`.layout` written, and an :class:`Evaluation` out.

The candidates' and the baseline's predictions come from the train stage (``test_predictions.npz``); the last
blessed model, if any, is scored from its head on cached feature vectors or from its published predictions
(see :mod:`.reference`).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hubpipe.components.common import features
from hubpipe.components.common.publish_root import read_latest_id, reference_from
from hubpipe.components.evaluate import intervals, layout, visuals
from hubpipe.components.evaluate.blessing import MIN_TEST_IMAGES_TO_SHOW, Comparison, Decision, Score, decide
from hubpipe.components.evaluate.candidates import TrainedModel, load_trained_models
from hubpipe.components.evaluate.content import write_tensorboard
from hubpipe.components.evaluate.metrics import ClassificationMetrics, classification_metrics
from hubpipe.components.evaluate.reference import ReferenceScore, TestSplit, score_reference
from hubpipe.components.train.layout import LOGS_DIR, SCRATCH, TRANSFER
from hubpipe.pipeline.core.artifacts import stable_hash, write_json_atomic
from hubpipe.pipeline.core.config import EvaluateConfig
from hubpipe.pipeline.core.errors import StageError

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluateRequest:
    ingest_dir: Path  # examples/ and labels.txt
    train_dir: Path  # models/<name>/ and logs/<name>/
    output_dir: Path
    vector_store: str  # the vector store the train stage filled (the candidates' test vectors)
    publish_root: str  # where the last blessed model is looked up
    thresholds: EvaluateConfig


@dataclass(frozen=True)
class Evaluation:
    evaluation_id: str  # "<UTC time>-<hash>": names the run's published logs and, if blessed, the version
    blessed: str | None
    decision: Decision
    metrics: dict[str, ClassificationMetrics]
    reference: ReferenceScore
    latest_seen: str | None = None  # LATEST when the reference was looked up: publish moves LATEST only from it

    def results(self) -> dict[str, Any]:
        """Key results for run.json."""
        checks = self.decision.checks
        return {
            "blessed": self.blessed,
            "checks_passed": sum(c.passed is True for c in checks),
            "checks_failed": sum(c.passed is False for c in checks),
            "checks_skipped": sum(c.passed is None for c in checks),
            "compared_with": self.reference.version,
            "models": {
                name: {"accuracy": round(m.accuracy, 4), "macro_f1": round(m.macro_f1, 4)}
                for name, m in self.metrics.items()
            },
        }


def _score(model: TrainedModel, metrics: dict[str, ClassificationMetrics]) -> Score:
    predictions = model.predictions
    return Score(predictions.probabilities.argmax(axis=1) == predictions.labels, metrics[model.name].macro_f1)


def _baseline(models: list[TrainedModel], metrics: dict[str, ClassificationMetrics]) -> Comparison:
    scratch = [model for model in models if model.kind == SCRATCH]
    if not scratch:
        return Comparison(None, None, "this run trained no from-scratch baseline (train.baseline is off)")
    return Comparison(scratch[0].name, _score(scratch[0], metrics))


def _compared(reference: ReferenceScore) -> Comparison:
    if reference.metrics is None or reference.hits is None:
        return Comparison(reference.version, None, reference.skip_reason)
    return Comparison(reference.version, Score(reference.hits, reference.metrics.macro_f1))


def _evaluation_id(candidates: list[TrainedModel], reference: ReferenceScore, thresholds: EvaluateConfig) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    digest = stable_hash({"models": [m.key for m in candidates], "reference": reference.version, **asdict(thresholds)})
    return f"{stamp}-{digest[:8]}"


def evaluate(request: EvaluateRequest) -> Evaluation:
    """Scores, compares and blesses; writes the artifacts listed in the module docstring."""
    class_names = features.read_class_names(request.ingest_dir)
    models = load_trained_models(request.train_dir, class_names)
    candidates = [model for model in models if model.kind == TRANSFER]
    if not candidates:
        raise StageError("the train stage produced no transfer model to evaluate (only the from-scratch baseline)")
    metrics = {
        model.name: classification_metrics(model.predictions.labels, model.predictions.probabilities, class_names)
        for model in models
    }
    first = models[0].predictions
    split = TestSplit(first.ids, first.labels, class_names, request.ingest_dir, request.vector_store)
    latest_seen = read_latest_id(request.publish_root)  # publish moves LATEST only if it still names this
    last_blessed = reference_from(request.publish_root, latest_seen, [model.key for model in candidates])
    reference = score_reference(last_blessed, candidates, split)
    scores = {model.name: _score(model, metrics) for model in candidates}
    decision = decide(scores, _baseline(models, metrics), _compared(reference), request.thresholds)
    evaluation = Evaluation(
        _evaluation_id(candidates, reference, request.thresholds),
        decision.blessed,
        decision,
        metrics,
        reference,
        latest_seen,
    )
    for reason in decision.reasons:
        LOG.info("evaluate: %s", reason)
    _write_artifacts(request, evaluation, models, split)
    return evaluation


def _write_artifacts(
    request: EvaluateRequest, evaluation: Evaluation, models: list[TrainedModel], split: TestSplit
) -> None:
    out = request.output_dir
    for model in models:
        record = {
            "name": model.name,
            "kind": model.kind,
            "model_key": model.key,
            **evaluation.metrics[model.name].to_dict(),
        }
        write_json_atomic(out / layout.METRICS_DIR / f"{model.name}.json", record)
    write_json_atomic(out / layout.BLESSING_FILE, blessing_record(request, evaluation, models))
    marker = layout.BLESSED_MARKER if evaluation.blessed else layout.NOT_BLESSED_MARKER
    (out / marker).write_bytes(b"")
    pictures = write_tensorboard(
        out / layout.TENSORBOARD_DIR,
        models,
        metrics=evaluation.metrics,
        decision=evaluation.decision,
        split=split,
        train_logs=Path(request.train_dir) / LOGS_DIR,
        run_id=evaluation.evaluation_id,
    )
    for (model_name, picture_name), picture in pictures.items():
        folder = out / layout.IMAGES_DIR / model_name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{picture_name}.png").write_bytes(visuals.png_bytes(picture))


def _summary(metrics: ClassificationMetrics | None) -> dict[str, Any] | None:
    if metrics is None:
        return None
    return {
        "accuracy": metrics.accuracy,
        "accuracy_interval": list(metrics.accuracy_interval),
        "macro_f1": metrics.macro_f1,
        "log_loss": metrics.log_loss,
    }


#: How blessing.json's intervals and p-values are computed (see :mod:`.intervals` and :mod:`.blessing`).
STATISTICS = {
    "confidence": intervals.CONFIDENCE,
    "accuracy_interval": "Wilson score",
    "difference_interval": "Newcombe hybrid score for paired proportions (method 10)",
    "paired_test": "exact McNemar, two-sided",
    "min_test_images_to_show": MIN_TEST_IMAGES_TO_SHOW,
}


def blessing_record(request: EvaluateRequest, evaluation: Evaluation, models: list[TrainedModel]) -> dict[str, Any]:
    """The content of blessing.json."""
    decision, reference = evaluation.decision, evaluation.reference
    by_name = {model.name: model for model in models}
    blessed = by_name.get(evaluation.blessed) if evaluation.blessed else None
    return {
        "evaluation_id": evaluation.evaluation_id,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "blessed": evaluation.blessed,
        "blessed_model": None
        if blessed is None
        else {"name": blessed.name, "model_key": blessed.key, **_summary(evaluation.metrics[blessed.name])},
        "reasons": list(decision.reasons),
        "thresholds": asdict(request.thresholds),
        "statistics": STATISTICS,
        "checks": [check.to_dict() for check in decision.checks],
        "candidates": [
            {
                "name": model.name,
                "model_key": model.key,
                "passed": not decision.failed(model.name),
                **_summary(evaluation.metrics[model.name]),
            }
            for model in models
            if model.kind == TRANSFER
        ],
        "baselines": [{"name": m.name, **_summary(evaluation.metrics[m.name])} for m in models if m.kind == SCRATCH],
        "reference": {
            "version": reference.version,
            "method": reference.method,
            "skip_reason": reference.skip_reason,
            "metrics": None if reference.metrics is None else reference.metrics.to_dict(),
            "latest_seen": evaluation.latest_seen,
        },
        "publish_root": request.publish_root,
    }
