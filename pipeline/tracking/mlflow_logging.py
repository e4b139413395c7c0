"""What goes to MLflow from a run folder (imported only when tracking is on: it imports mlflow).

See :mod:`hubpipe.pipeline.tracking.run_tracking` for when and where; this module reads the stages' layouts
through their own constants and writes through ``MlflowClient`` (batched: one request per run for params and metrics).
"""

from __future__ import annotations

import importlib.metadata
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from hubpipe.components.evaluate import layout as evaluate_layout
from hubpipe.components.evaluate.layout import BLESSING_FILE, IMAGES_DIR, METRICS_DIR, read_blessing
from hubpipe.components.train import layout as train_layout
from hubpipe.components.train.layout import MODEL_FILE, MODELS_DIR, SERVING_DIR
from hubpipe.pipeline.core.artifacts import read_json

BATCH = 500  # metrics per log_batch request (the server accepts 1000)
TEST_METRICS = ("accuracy", "top5_accuracy", "macro_f1", "log_loss")
#: The pyfunc model's code (logged as "model from code": it needs TensorFlow, not hubpipe).
SERVING_MODEL_CODE = Path(__file__).with_name("mlflow_model.py")
MODEL_NAME = "model"  # the logged model's name in its run


def _log_batch(client: MlflowClient, run_id: str, metrics: Sequence[Metric] = (), **kwargs: Any) -> None:
    metrics = list(metrics)
    client.log_batch(run_id, metrics=metrics[:BATCH], **kwargs)
    for start in range(BATCH, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + BATCH])


def _history_metrics(history: Sequence[Mapping[str, float]], now: int) -> list[Metric]:
    """Per-epoch metrics (loss, accuracy, val_loss, val_accuracy, ...) with the epoch as the step."""
    return [
        Metric(key, float(value), now, int(entry["epoch"]))
        for entry in history
        for key, value in entry.items()
        if key != "epoch" and isinstance(value, (int, float))
    ]


def _log_model_run(
    client: MlflowClient, experiment_id: str, parent_id: str, folder: Path, *, evaluate: Path | None, history: bool
) -> None:
    """One child run for the model in ``folder``: hyperparameters, and its per-epoch history when ``history``
    (train's outputs are new), test metrics and pictures when ``evaluate`` is given (evaluate's are new)."""
    info = read_json(folder / MODEL_FILE)
    name = info.get("name", folder.name)
    child = client.create_run(experiment_id, run_name=name, tags={MLFLOW_PARENT_RUN_ID: parent_id, "model": name})
    now = int(time.time() * 1000)
    backbone = info.get("backbone") if isinstance(info.get("backbone"), dict) else {}
    params = {"kind": info.get("kind"), "mode": info.get("mode"), "backbone": backbone.get("name")}
    params.update({f"hparams.{k}": v for k, v in (info.get("hparams") or {}).items()})
    metrics = []
    if history:
        metrics = _history_metrics(info.get("history") or [], now)
        metrics.append(Metric("train_seconds", float(info.get("train_seconds") or 0.0), now, 0))
    if evaluate is not None:
        scores = read_json(evaluate / METRICS_DIR / f"{name}.json")
        metrics += [Metric(f"test_{key}", float(scores[key]), now, 0) for key in TEST_METRICS if key in scores]
    _log_batch(client, child.info.run_id, metrics, params=[Param(k, str(v)) for k, v in params.items()])
    if evaluate is not None and (evaluate / IMAGES_DIR / name).is_dir():
        client.log_artifacts(child.info.run_id, str(evaluate / IMAGES_DIR / name), "evaluation")
    client.set_terminated(child.info.run_id, "FINISHED")


def _log_blessing(client: MlflowClient, run_id: str, evaluate: Path) -> str | None:
    """The blessing as a tag and a metric, blessing.json as an artifact; returns the blessed model's name."""
    blessed = read_blessing(evaluate).blessed
    now = int(time.time() * 1000)
    _log_batch(
        client,
        run_id,
        [Metric("blessed", 1.0 if blessed else 0.0, now, 0)],
        tags=[RunTag("blessed_model", blessed or "none")],
    )
    client.log_artifact(run_id, str(evaluate / BLESSING_FILE))
    return blessed


def _log_serving_model(run_id: str, serving_dir: Path, registered_model: str) -> dict[str, Any]:
    """The serving SavedModel as an MLflow pyfunc model (encoded image bytes in, label and probability out),
    registered under ``registered_model`` when given."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    signature = ModelSignature(
        inputs=Schema([ColSpec("binary", "image")]),
        outputs=Schema([ColSpec("string", "label"), ColSpec("double", "probability")]),
    )
    requirements = [f"{name}=={importlib.metadata.version(name)}" for name in ("mlflow", "tensorflow", "pandas")]
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name=MODEL_NAME,
            python_model=str(SERVING_MODEL_CODE),
            artifacts={"serving": str(serving_dir)},
            signature=signature,
            pip_requirements=requirements,
            registered_model_name=registered_model or None,
        )
    version = getattr(info, "registered_model_version", None)
    return {"model_uri": info.model_uri, "registered_model": registered_model or "", "model_version": version}


def _log_report(client: MlflowClient, run_id: str, output_dir: Path) -> None:
    from hubpipe.pipeline.report.page import REPORT_FILE, write_report

    with tempfile.TemporaryDirectory(prefix="hubpipe-tracking-") as folder:
        client.log_artifact(run_id, str(write_report(output_dir, Path(folder) / REPORT_FILE)))


def _log_parent(client: MlflowClient, run_id: str, run_file: Mapping[str, Any], params: Mapping[str, str]) -> None:
    now = int(time.time() * 1000)
    metrics = [
        Metric(f"stage_seconds.{record['name']}", float(record.get("duration_s") or 0.0), now, 0)
        for record in run_file.get("stages", [])
    ]
    tags = [RunTag(f"stage.{record['name']}", str(record.get("status"))) for record in run_file.get("stages", [])]
    _log_batch(client, run_id, metrics, params=[Param(k, v) for k, v in params.items()], tags=tags)


def log_run(
    target: Any,
    output_dir: Path,
    run_file: Mapping[str, Any],
    params: Mapping[str, str],
    *,
    pending: Sequence[str],
    succeeded: bool,
) -> dict[str, Any]:
    """Logs the parent run and the ``pending`` stages' outputs; returns the ids for run.json."""
    if target.local_dir:
        Path(target.local_dir).mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(target.uri)
    client = MlflowClient(target.uri)
    experiment = client.get_experiment_by_name(target.experiment)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(target.experiment, artifact_location=target.artifact_location or None)
    )
    parent = client.create_run(experiment_id, run_name=output_dir.name, tags={"hubpipe.run_folder": str(output_dir)})
    run_id = parent.info.run_id
    _log_parent(client, run_id, run_file, params)
    evaluate = output_dir / evaluate_layout.STAGE if evaluate_layout.STAGE in pending else None
    models = output_dir / train_layout.STAGE / MODELS_DIR
    for model_json in sorted(models.glob(f"*/{MODEL_FILE}")):
        history = train_layout.STAGE in pending
        _log_model_run(client, experiment_id, run_id, model_json.parent, evaluate=evaluate, history=history)
    result: dict[str, Any] = {"run_id": run_id, "experiment_id": experiment_id}
    if evaluate is not None:
        blessed = _log_blessing(client, run_id, evaluate)
        if blessed:
            serving = models / blessed / SERVING_DIR
            result.update(_log_serving_model(run_id, serving, target.registered_model))
    _log_report(client, run_id, output_dir)
    client.set_terminated(run_id, "FINISHED" if succeeded else "FAILED")
    return result
