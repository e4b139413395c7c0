"""What goes to MLflow from a run folder (imported only when tracking is on: it imports mlflow).

See :mod:`hubpipe.pipeline.tracking.run_tracking` for when, where and what; this module reads the stages' layouts
through their own constants and writes through ``MlflowClient`` (batched: one request per run for params and metrics).

The dataset is an MLflow dataset input (context ``train``) of the parent run and of each child run: its name is the
data source's description (ingest's summary.json; the ``data.source`` setting where the ingest folder is not part of
the run folder, as on Kubeflow), its digest the start of the ingest output's identity that the train stage's
manifest records (``inputs.upstream.ingest``: a hash of ingest's fingerprint and of its files' digests; evaluate's
manifest records the same, and on Kubeflow only it does; the whole hash is the input's tag
``hubpipe.ingest_digest``), its source the URL, the folder or the sample generator.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import os
import re
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.filesystem_dataset_source import FileSystemDatasetSource
from mlflow.data.http_dataset_source import HTTPDatasetSource
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT, MLFLOW_PARENT_RUN_ID

from hubpipe.components.evaluate import layout as evaluate_layout
from hubpipe.components.evaluate.layout import BLESSING_FILE, IMAGES_DIR, METRICS_DIR, Blessing, read_blessing
from hubpipe.components.ingest import layout as ingest_layout
from hubpipe.components.publish import layout as publish_layout
from hubpipe.components.train import layout as train_layout
from hubpipe.components.train.layout import MODEL_FILE, MODELS_DIR, SERVING_DIR
from hubpipe.data.presets import get_preset
from hubpipe.pipeline.core.artifacts import read_json
from hubpipe.pipeline.core.config import SAMPLE_SOURCE
from hubpipe.pipeline.core.execution import MANIFEST
from hubpipe.pipeline.tracking.links import run_url

BATCH = 500  # metrics per log_batch request (the server accepts 1000)
TEST_METRICS = ("accuracy", "top5_accuracy", "macro_f1", "log_loss")
#: The pyfunc model's code (logged as "model from code": it needs TensorFlow, not hubpipe).
SERVING_MODEL_CODE = Path(__file__).with_name("mlflow_model.py")
MODEL_NAME = "model"  # the logged model's name in its run
TRACKING_URI_VARIABLE = "MLFLOW_TRACKING_URI"
#: The parent run's tags: the run folder, the run name, the evaluation id; one per link (``hubpipe.link.<key>``).
RUN_FOLDER_TAG, RUN_NAME_TAG, EVALUATION_TAG, LINK_TAG = (
    "hubpipe.run_folder",
    "hubpipe.run_name",
    "hubpipe.evaluation_id",
    "hubpipe.link.",
)
#: run.json's links that are not tagged as links: the evaluation id has a tag of its own, the MLflow run is this one.
UNTAGGED_LINKS = ("evaluation_id", "mlflow_run")
#: The links a registered version's description names, in this order, with their words.
LINK_WORDS = {
    "run_folder": "run folder",
    "tensorboard_logs": "TensorBoard logs",
    "published_version": "published version",
    "publish_root": "publish root",
    "mlflow_run": "MLflow run",
}
DATASET_CONTEXT = "train"
DATASET_DIGEST_CHARS = 12  # MLflow keeps at most 36 and shows 8 to 10
INGEST_DIGEST_TAG = "hubpipe.ingest_digest"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_\-. ]")  # what MLflow refuses in names (and "/", which nests them)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _log_batch(client: MlflowClient, run_id: str, metrics: Sequence[Metric] = (), **kwargs: Any) -> None:
    metrics = list(metrics)
    client.log_batch(run_id, metrics=metrics[:BATCH], **kwargs)
    for start in range(BATCH, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + BATCH])


def _now_ms() -> int:
    return int(time.time() * 1000)


def utc_ms(stamp: Any) -> int | None:
    """An ISO-8601 time (UTC when it names no zone) in milliseconds since the epoch; None when it is not one."""
    try:
        moment = dt.datetime.fromisoformat(str(stamp))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return (moment - _EPOCH) // dt.timedelta(milliseconds=1)


def training_span(info: Mapping[str, Any]) -> tuple[int, int] | None:
    """When the model's training began and ended (model.json's ``train_started``/``train_finished``), in ms;
    None for a model.json without them (written by an earlier hubpipe) or with an end before the start."""
    start, end = utc_ms(info.get("train_started")), utc_ms(info.get("train_finished"))
    if start is None or end is None or end < start:
        return None
    return start, end


def metric_name(text: str) -> str:
    """``text`` as a part of an MLflow metric or tag name (characters MLflow refuses become ``_``)."""
    return _UNSAFE_NAME.sub("_", text)


def _history_metrics(history: Sequence[Mapping[str, float]], span: tuple[int, int]) -> list[Metric]:
    """Per-epoch metrics (loss, accuracy, val_loss, val_accuracy, ...) with the epoch as the step, each epoch
    timestamped at its share of the training ``span`` (the n-th of N epochs at start + n/N of the span)."""
    start, end = span
    count = max(len(history), 1)
    return [
        Metric(key, float(value), start + (end - start) * (index + 1) // count, int(entry["epoch"]))
        for index, entry in enumerate(history)
        for key, value in entry.items()
        if key != "epoch" and isinstance(value, (int, float))
    ]


def _interval_metrics(prefix: str, bounds: Any, now: int) -> list[Metric]:
    """``<prefix>_low`` and ``<prefix>_high`` of a ``[low, high]`` interval (nothing when there is none)."""
    if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
        return []
    low, high = bounds
    return [Metric(f"{prefix}_low", float(low), now, 0), Metric(f"{prefix}_high", float(high), now, 0)]


def _log_model_run(
    client: MlflowClient,
    experiment_id: str,
    parent_id: str,
    folder: Path,
    *,
    evaluate: Path | None,
    history: bool,
    dataset: DatasetInput | None,
) -> None:
    """One child run for the model in ``folder``: hyperparameters and the dataset, and its per-epoch history
    when ``history`` (train's outputs are new: the run then spans the model's real training), test metrics and
    pictures when ``evaluate`` is given (evaluate's are new)."""
    info = read_json(folder / MODEL_FILE)
    name = info.get("name", folder.name)
    now = _now_ms()
    span = training_span(info) if history else None
    child = client.create_run(
        experiment_id,
        start_time=span[0] if span else None,
        run_name=name,
        tags={MLFLOW_PARENT_RUN_ID: parent_id, "model": name},
    )
    backbone = info.get("backbone") if isinstance(info.get("backbone"), dict) else {}
    params = {"kind": info.get("kind"), "mode": info.get("mode"), "backbone": backbone.get("name")}
    params.update({f"hparams.{k}": v for k, v in (info.get("hparams") or {}).items()})
    metrics = []
    if history:
        metrics = _history_metrics(info.get("history") or [], span or (now, now))
        metrics.append(Metric("train_seconds", float(info.get("train_seconds") or 0.0), span[1] if span else now, 0))
    if evaluate is not None:
        scores = read_json(evaluate / METRICS_DIR / f"{name}.json")
        metrics += [Metric(f"test_{key}", float(scores[key]), now, 0) for key in TEST_METRICS if key in scores]
        metrics += _interval_metrics("test_accuracy", scores.get("accuracy_interval"), now)
    _log_batch(client, child.info.run_id, metrics, params=[Param(k, str(v)) for k, v in params.items()])
    if dataset is not None:
        client.log_inputs(child.info.run_id, datasets=[dataset])
    if evaluate is not None and (evaluate / IMAGES_DIR / name).is_dir():
        client.log_artifacts(child.info.run_id, str(evaluate / IMAGES_DIR / name), "evaluation")
    client.set_terminated(child.info.run_id, "FINISHED", end_time=span[1] if span else None)


def gate_metrics(blessing: Blessing, now: int) -> tuple[list[Metric], list[RunTag]]:
    """Each check of each candidate: ``gate.<candidate>.<check>`` (the value), ``.low``/``.high`` (its 95%
    interval) and ``.p_value`` where the check has them, and the tag ``gate.<candidate>.<check>.rule``."""
    metrics, tags = [], []
    for check in blessing.checks:
        key = f"gate.{metric_name(str(check.candidate))}.{metric_name(str(check.name))}"
        values = {key: check.value, f"{key}.p_value": check.p_value}
        if check.interval is not None:
            values.update({f"{key}.low": check.interval.low, f"{key}.high": check.interval.high})
        metrics += [Metric(name, float(value), now, 0) for name, value in values.items() if value is not None]
        if check.rule:
            tags.append(RunTag(f"{key}.rule", check.rule))
    return metrics, tags


def _log_blessing(client: MlflowClient, run_id: str, evaluate: Path) -> Blessing:
    """The blessing as a tag and a metric, the gate's checks (see :func:`gate_metrics`), blessing.json as an
    artifact; returns the blessing."""
    blessing = read_blessing(evaluate)
    now = _now_ms()
    checks, rules = gate_metrics(blessing, now)
    _log_batch(
        client,
        run_id,
        [Metric("blessed", 1.0 if blessing.blessed else 0.0, now, 0), *checks],
        tags=[RunTag("blessed_model", blessing.blessed or "none"), *rules],
    )
    client.log_artifact(run_id, str(evaluate / BLESSING_FILE))
    return blessing


@contextlib.contextmanager
def _process_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking URI set to ``uri`` (``mlflow.start_run`` and ``log_model`` use it) for the
    block only, and ``$MLFLOW_TRACKING_URI``, which MLflow sets along with it, put back as it was: otherwise a
    later run in the same process (the next notebook cell) would be tracked to this server without asking."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri  # MLflow's own set-and-restore

    saved = os.environ.get(TRACKING_URI_VARIABLE)
    try:
        with _use_tracking_uri(uri):
            yield
    finally:
        if saved is None:
            os.environ.pop(TRACKING_URI_VARIABLE, None)
        else:
            os.environ[TRACKING_URI_VARIABLE] = saved


def _log_serving_model(uri: str, run_id: str, serving_dir: Path, registered_model: str) -> dict[str, Any]:
    """The serving SavedModel as an MLflow pyfunc model (encoded image bytes in, label and probability out),
    registered under ``registered_model`` when given."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    signature = ModelSignature(
        inputs=Schema([ColSpec("binary", "image")]),
        outputs=Schema([ColSpec("string", "label"), ColSpec("double", "probability")]),
    )
    requirements = [f"{name}=={importlib.metadata.version(name)}" for name in ("mlflow", "tensorflow", "pandas")]
    with _process_tracking_uri(uri), mlflow.start_run(run_id=run_id):
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


def _read_dict(path: Path) -> dict[str, Any]:
    """A JSON object file, or {} when it is missing or not one (tracking reads what is there)."""
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def dataset_source(configured: str, described: Mapping[str, Any]) -> Any:
    """The MLflow dataset source of the data: ``configured`` is the ``data.source`` setting, ``described`` the
    ingest summary's ``source`` (kind, description, location; empty when the ingest folder is not there).

    A URL (a preset's too) is an HTTP source, the embedded sample a code source (its generator's description), a
    folder, an archive or a bucket path the filesystem source MLflow has for its scheme."""
    kind, description = described.get("kind"), str(described.get("description") or "")
    preset = get_preset(configured)
    url = description if kind == "url" else preset.url if preset else configured
    if re.match(r"^https?://", url, re.IGNORECASE):
        return HTTPDatasetSource(url)
    code = CodeDatasetSource({"data.source": configured, **({"description": description} if description else {})})
    if kind == "sample" or configured == SAMPLE_SOURCE:
        return code
    try:
        with warnings.catch_warnings():  # a local path matches MLflow's two local sources ("" and file://) alike
            warnings.simplefilter("ignore")
            return resolve_dataset_source(description or configured, candidate_sources=[FileSystemDatasetSource])
    except Exception:  # a scheme MLflow has no source for
        return code


def ingest_digest(output_dir: Path) -> str | None:
    """The identity of the ingest output the models were trained and tested on, as the train stage's manifest
    records it (else evaluate's: a Kubeflow run's train folder is collected from its parts, whose manifests are
    not part of it); None when neither records it."""
    for stage in (train_layout.STAGE, evaluate_layout.STAGE):
        upstream = (_read_dict(output_dir / stage / MANIFEST).get("inputs") or {}).get("upstream")
        if isinstance(upstream, dict) and upstream.get(ingest_layout.STAGE):
            return str(upstream[ingest_layout.STAGE])
    return None


def run_dataset(output_dir: Path, params: Mapping[str, str]) -> DatasetInput | None:
    """The run's dataset as an MLflow dataset input (see the module); None when no manifest records the ingest
    output the models read."""
    digest = ingest_digest(output_dir)
    if not digest:
        return None
    described = _read_dict(output_dir / ingest_layout.STAGE / ingest_layout.SUMMARY_FILE).get("source") or {}
    configured = params.get("data.source", "")
    source = dataset_source(configured, described if isinstance(described, dict) else {})
    name = str((described.get("description") if isinstance(described, dict) else "") or configured or "dataset")
    described_dataset = MetaDataset(source, name=name, digest=digest[:DATASET_DIGEST_CHARS]).to_dict()
    dataset = Dataset(**{key: described_dataset[key] for key in ("name", "digest", "source_type", "source")})
    return DatasetInput(
        dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, DATASET_CONTEXT), InputTag(INGEST_DIGEST_TAG, digest)]
    )


def run_links(output_dir: Path, run_file: Mapping[str, Any]) -> dict[str, Any]:
    """run.json's ``links``; for a run.json without them, those publish.json tells, and the run folder."""
    links = run_file.get("links")
    if isinstance(links, dict):
        return dict(links)
    publication = _read_dict(output_dir / publish_layout.STAGE / publish_layout.PUBLISH_FILE)
    return {"run_folder": str(output_dir), **(publish_layout.publication_links(publication) if publication else {})}


def _format_interval(bounds: Any) -> str:
    if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
        return ""
    return f"[{float(bounds[0]):.4f}, {float(bounds[1]):.4f}]"


def version_description(
    run_name: str, model: Mapping[str, Any], scores: Mapping[str, Any], evaluation_id: str, links: Mapping[str, Any]
) -> tuple[str, dict[str, str]]:
    """A registered version's description (Markdown) and tags: the run name, the model and its backbone, its
    test accuracy and 95% interval, the evaluation id and the links."""
    name = str(model.get("name") or "")
    backbone = model.get("backbone") if isinstance(model.get("backbone"), dict) else {}
    backbone_name = str(backbone.get("name") or "")
    accuracy = scores.get("accuracy", model.get("test_accuracy"))
    interval = _format_interval(scores.get("accuracy_interval"))
    tags = {
        "run_name": run_name,
        "model": name,
        "backbone": backbone_name,
        "accuracy": "" if accuracy is None else f"{float(accuracy):.4f}",
        "accuracy_interval": interval,
        "evaluation_id": evaluation_id,
    }
    tags.update({key: str(links[key]) for key in LINK_WORDS if links.get(key)})
    tags = {key: value for key, value in tags.items() if value}
    what = f"`{name}`" + (f" on the backbone `{backbone_name}`" if backbone_name else " (no pretrained backbone)")
    lines = [f"Blessed model of the hubpipe run **{run_name}**: {what}."]
    if accuracy is not None:
        lines.append(f"Test accuracy {float(accuracy):.4f}" + (f" (95% interval {interval})" if interval else "") + ".")
    if evaluation_id:
        lines.append(f"Evaluation `{evaluation_id}`.")
    lines += ["", *(f"- {words}: {links[key]}" for key, words in LINK_WORDS.items() if links.get(key))]
    return "\n".join(lines).strip() + "\n", tags


def _describe_version(
    client: MlflowClient, registered: Mapping[str, Any], alias: str, description: str, tags: Mapping[str, str]
) -> None:
    """The registered version's description, tags and, with ``alias``, the alias (moved from its last version)."""
    name, version = registered["registered_model"], str(registered["model_version"])
    client.update_model_version(name, version, description=description)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if alias:
        client.set_registered_model_alias(name, alias, version)


def _log_parent(
    client: MlflowClient, run_id: str, run_file: Mapping[str, Any], params: Mapping[str, str], tags: Sequence[RunTag]
) -> None:
    now = _now_ms()
    metrics = [
        Metric(f"stage_seconds.{record['name']}", float(record.get("duration_s") or 0.0), now, 0)
        for record in run_file.get("stages", [])
    ]
    tags = [
        *tags,
        *(RunTag(f"stage.{record['name']}", str(record.get("status"))) for record in run_file.get("stages", [])),
    ]
    _log_batch(client, run_id, metrics, params=[Param(k, v) for k, v in params.items()], tags=tags)


def run_tags(output_dir: Path, run_name: str, evaluation_id: str, links: Mapping[str, Any]) -> list[RunTag]:
    """The parent run's tags: the run folder, the run name, the evaluation id and one per link."""
    tags = {RUN_FOLDER_TAG: str(output_dir), RUN_NAME_TAG: run_name, EVALUATION_TAG: evaluation_id}
    tags.update(
        {
            f"{LINK_TAG}{metric_name(key)}": str(value)
            for key, value in links.items()
            if key not in UNTAGGED_LINKS and value and isinstance(value, str)
        }
    )
    return [RunTag(key, value) for key, value in tags.items() if value]


def _parent_start(run_file: Mapping[str, Any], models: Path, pending: Sequence[str]) -> int | None:
    """When the parent run began, in ms: the pipeline run's start (run.json ``process.started``), or the start of
    the earliest training logged under it when that was before (its child runs then sit inside the parent)."""
    process = run_file.get("process") if isinstance(run_file.get("process"), Mapping) else {}
    starts = [utc_ms(process.get("started"))]
    if train_layout.STAGE in pending:
        spans = (training_span(read_json(path)) for path in models.glob(f"*/{MODEL_FILE}"))
        starts += [span[0] for span in spans if span is not None]
    return min((start for start in starts if start is not None), default=None)


def log_run(
    target: Any,
    output_dir: Path,
    run_file: Mapping[str, Any],
    params: Mapping[str, str],
    *,
    pending: Sequence[str],
    succeeded: bool,
) -> dict[str, Any]:
    """Logs the parent run and the ``pending`` stages' outputs; returns the ids (and the run's page) for
    run.json."""
    if target.local_dir:
        Path(target.local_dir).mkdir(parents=True, exist_ok=True)
    client = MlflowClient(target.uri)
    experiment = client.get_experiment_by_name(target.experiment)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(target.experiment, artifact_location=target.artifact_location or None)
    )
    run_name = str(run_file.get("name") or output_dir.name)
    links = run_links(output_dir, run_file)
    evaluate_dir = output_dir / evaluate_layout.STAGE
    blessing = read_blessing(evaluate_dir) if (evaluate_dir / BLESSING_FILE).is_file() else Blessing()
    evaluation_id = str(links.get("evaluation_id") or blessing.evaluation_id or "")
    models = output_dir / train_layout.STAGE / MODELS_DIR
    parent = client.create_run(experiment_id, run_name=run_name, start_time=_parent_start(run_file, models, pending))
    run_id = parent.info.run_id
    result: dict[str, Any] = {
        "run_id": run_id,
        "experiment_id": experiment_id,
        "run_url": run_url(target.uri, experiment_id, run_id),
    }
    try:
        _log_parent(client, run_id, run_file, params, run_tags(output_dir, run_name, evaluation_id, links))
        dataset = run_dataset(output_dir, params)
        if dataset is not None:
            client.log_inputs(run_id, datasets=[dataset])
        evaluate = evaluate_dir if evaluate_layout.STAGE in pending else None
        for model_json in sorted(models.glob(f"*/{MODEL_FILE}")):
            history = train_layout.STAGE in pending
            _log_model_run(
                client, experiment_id, run_id, model_json.parent, evaluate=evaluate, history=history, dataset=dataset
            )
        if evaluate is not None:
            blessed = _log_blessing(client, run_id, evaluate).blessed
            if blessed:
                serving = models / blessed / SERVING_DIR
                result.update(_log_serving_model(target.uri, run_id, serving, target.registered_model))
                if result.get("model_version") is not None:
                    model = read_json(models / blessed / MODEL_FILE)
                    scores = _read_dict(evaluate / METRICS_DIR / f"{blessed}.json")
                    version_links = {**links, "mlflow_run": result["run_url"]}
                    description, tags = version_description(run_name, model, scores, evaluation_id, version_links)
                    alias = target.alias if succeeded else ""  # a run that failed after evaluate published nothing
                    _describe_version(client, result, alias, description, tags)
        _log_report(client, run_id, output_dir)
    except BaseException:
        with contextlib.suppress(Exception):  # not left RUNNING; the server may be what failed, though
            client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED" if succeeded else "FAILED")
    return result
