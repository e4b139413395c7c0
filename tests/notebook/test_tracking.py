"""MLflow tracking against a real `mlflow server` (SQLite backend, local artifact store), into a local folder without
a server, and with the server down."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tiny_pipeline as tiny
from notebook_fixtures import free_port, mlflow_server, tiny_config, tiny_config_file

from hubpipe.pipeline.core.config import PipelineConfig, replace
from hubpipe.pipeline.local_runner import run_pipeline
from hubpipe.pipeline.tracking.run_tracking import TrackingTarget, flatten, stages_to_log

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MODEL_NAME = "tiny-classifier"


def tracked(config: PipelineConfig, uri: str) -> PipelineConfig:
    """``config`` logging to ``uri``, with a gate every model passes (so a model is blessed and registered)."""
    gate = replace(config.evaluate, min_accuracy=0.0, min_margin_over_baseline=-1.0, max_drop_vs_blessed=1.0)
    return replace(config, evaluate=gate, track=replace(config.track, mlflow_uri=uri, registered_model=MODEL_NAME))


def test_flatten_and_what_is_pending() -> None:
    assert flatten({"train": {"epochs": 5, "backbones": ["a", "b"]}, "x": 1}) == {
        "train.epochs": "5",
        "train.backbones": "a,b",
        "x": "1",
    }
    target = TrackingTarget("http://h", "e", "")
    run_file = {
        "stages": [
            {"name": "ingest", "status": "ran", "fingerprint": "i"},
            {"name": "train", "status": "cached", "fingerprint": "t1"},
            {"name": "evaluate", "status": "failed", "fingerprint": "e1"},
        ]
    }
    assert stages_to_log(run_file, {}, target) == ["train"]
    logged = {"uri": "http://h", "experiment": "e", "logged": {"train": "t1"}}
    assert stages_to_log(run_file, logged, target) == []
    assert stages_to_log(run_file, {**logged, "uri": "http://other"}, target) == ["train"]


def test_run_logs_to_a_real_server(tmp_path: Path) -> None:
    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient

    config = tiny_config(tmp_path)
    with mlflow_server(tmp_path / "mlflow") as uri:
        report = run_pipeline(tracked(config, uri), tmp_path / "run")
        assert report.tracking["status"] == "logged", report.tracking
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("hubpipe")
        runs = client.search_runs([experiment.experiment_id])
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId")}
        (parent,) = parents
        assert parent.info.run_id == report.tracking["run_id"] and parent.info.status == "FINISHED"
        assert parent.data.params["train.epochs"] == "2" and parent.data.params["data.image_size"] == "32"
        models = json.loads((tmp_path / "run" / "run.json").read_text())["stages"][2]["results"]["models"]
        assert set(children) == set(models)
        for name, child in children.items():
            assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
            assert child.data.metrics["test_accuracy"] == pytest.approx(models[name]["test_accuracy"], abs=1e-4)
            epochs = [m.step for m in client.get_metric_history(child.info.run_id, "accuracy")]
            assert epochs == sorted(epochs) and len(epochs) >= 1
            pictures = {a.path for a in client.list_artifacts(child.info.run_id, "evaluation")}
            assert "evaluation/confusion_matrix.png" in pictures
        transfer = next(c for n, c in children.items() if n != "scratch_cnn")
        assert len(client.get_metric_history(transfer.info.run_id, "val_accuracy")) == 2  # train.epochs
        parent_files = {a.path for a in client.list_artifacts(parent.info.run_id)}
        assert {"report.html", "blessing.json"} <= parent_files
        assert parent.data.tags["blessed_model"] in children
        (version,) = client.search_model_versions(f"name='{MODEL_NAME}'")
        assert str(version.version) == str(report.tracking["model_version"])
        image = sorted((tmp_path / "data" / "test").rglob("*.jpg"))[0].read_bytes()
        model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{version.version}")
        predicted = model.predict(pd.DataFrame({"image": [image, image]}))
        classes = (tmp_path / "run" / "ingest" / "labels.txt").read_text().split()
        assert list(predicted.columns) == ["label", "probability"] and predicted["label"][0] in classes
        assert 0.0 < predicted["probability"][0] <= 1.0

        again = run_pipeline(tracked(config, uri), tmp_path / "run")  # every stage cached: nothing logged twice
        assert {s.status for s in again.stages} == {"cached"}
        assert again.tracking["status"] == "up_to_date"
        assert len(client.search_runs([experiment.experiment_id])) == len(runs)


def test_server_down_keeps_the_run_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from hubpipe.pipeline.report.page import render_report

    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="hubpipe.tracking"):
        report = run_pipeline(tracked(tiny_config(tmp_path), uri), tmp_path / "run")
    assert report.status == "succeeded" and {s.status for s in report.stages} == {"ran"}
    # hubpipe's own warnings (the libraries' notices, e.g. Beam's about crcmod, are the CLI's and API's to hide)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("hubpipe")]
    assert len(warnings) == 1 and uri in warnings[0] and "\n" not in warnings[0]
    run_file = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run_file["tracking"]["status"] == "failed" and uri in run_file["tracking"]["error"]
    assert "tracking failed" in render_report(tmp_path / "run")
    assert not (tmp_path / "run" / "tracking.json").exists()  # a later run with the server up logs it all


@pytest.mark.filterwarnings("ignore:You may be attemping to run a task that uses custom:RuntimeWarning")
def test_kubeflow_run_logs_to_a_real_server_from_its_publish_task(tmp_path: Path) -> None:
    from kfp import local
    from mlflow.tracking import MlflowClient

    config = tracked(tiny_config(tmp_path), "")  # the server is given as the pipeline parameter's default
    with mlflow_server(tmp_path / "mlflow") as uri:
        config = replace(config, track=replace(config.track, mlflow_uri=uri))
        run = tiny.run_through_kfp(local.SubprocessRunner(use_venv=False), tmp_path / "kfp", config)
        publication = tiny.outputs(run, "publish")["publication"]["metadata"]
        assert publication["tracking"] == "logged"
        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("hubpipe").experiment_id])
        (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        assert parent.info.run_id == publication["mlflow_run_id"] and parent.info.status == "FINISHED"
        assert parent.data.params["track.mlflow_uri"] == uri and parent.data.params["train.epochs"] == "2"
        assert {"stage_seconds.train", "stage_seconds.evaluate", "stage_seconds.publish"} <= set(parent.data.metrics)
        evaluation = tiny.folder_output(run, "evaluate")
        assert parent.info.run_name == json.loads((evaluation / "blessing.json").read_text())["evaluation_id"]
        scores = {path.stem: json.loads(path.read_text()) for path in (evaluation / "metrics").glob("*.json")}
        children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
        assert set(children) == set(scores) and parent.data.tags["blessed_model"] in children
        for name, child in children.items():
            assert child.data.metrics["test_accuracy"] == pytest.approx(scores[name]["accuracy"], abs=1e-4)
        assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"report.html", "blessing.json"}
        (version,) = client.search_model_versions(f"name='{MODEL_NAME}'")
        assert version.run_id == parent.info.run_id


def test_a_path_or_file_uri_is_a_local_sqlite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hubpipe.pipeline.tracking.run_tracking import local_tracking_dir, tracking_target

    monkeypatch.chdir(tmp_path)
    assert local_tracking_dir("mlruns") == tmp_path / "mlruns"
    assert local_tracking_dir(f"file://{tmp_path}/a%20b") == tmp_path / "a b"
    assert local_tracking_dir("file:relative") == tmp_path / "relative"
    for uri in ("http://h:5000", "https://h", "sqlite:///x.db", "postgresql://u@h/db", "databricks", "databricks://p"):
        assert local_tracking_dir(uri) is None
    target = tracking_target(replace(tiny_config(tmp_path), track=replace(tiny_config(tmp_path).track, mlflow_uri="t")))
    assert target.uri == f"sqlite:///{tmp_path}/t/mlflow.db"
    assert target.artifact_location == (tmp_path / "t" / "artifacts").as_uri()


def _hubpipe_run(*args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    command = [sys.executable, "-m", "hubpipe.pipeline.cli", "run", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=900, env=env)


def test_run_logs_into_a_local_folder_without_a_server(tmp_path: Path) -> None:
    """`--set track.mlflow_uri=PATH` (and `file://PATH`): parent run, child runs and the registered model, in a
    SQLite store in that folder with the artifacts beside it; MLflow 3's file store would refuse both."""
    from mlflow.tracking import MlflowClient

    gate = ["evaluate.min_accuracy=0", "evaluate.min_margin_over_baseline=-1", "evaluate.max_drop_vs_blessed=1"]
    settings = [f"--set={item}" for item in (*gate, f"track.registered_model={MODEL_NAME}")]
    common = ["--config", str(tiny_config_file(tmp_path)), "--output", str(tmp_path / "run"), *settings]
    for store, uri in ((tmp_path / "plain", str(tmp_path / "plain")), (tmp_path / "uri", (tmp_path / "uri").as_uri())):
        result = _hubpipe_run(*common, "--set", f"track.mlflow_uri={uri}")  # the second run: stages cached
        assert result.returncode == 0, result.stderr
        assert "tracking failed" not in result.stderr and "maintenance mode" not in result.stderr
        tracking = json.loads((tmp_path / "run" / "run.json").read_text())["tracking"]
        assert tracking["status"] == "logged" and tracking["uri"] == f"sqlite:///{store}/mlflow.db", tracking
        client = MlflowClient(f"sqlite:///{store}/mlflow.db")
        experiment = client.get_experiment_by_name("hubpipe")
        assert experiment.artifact_location == (store / "artifacts").as_uri()
        runs = client.search_runs([experiment.experiment_id])
        (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        children = {r.info.run_name for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
        models = {folder.name for folder in (tmp_path / "run" / "train" / "models").iterdir()}
        assert parent.info.run_id == tracking["run_id"] and children == models and len(models) == 2
        assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"report.html", "blessing.json"}
        (version,) = client.search_model_versions(f"name='{MODEL_NAME}'")
        assert version.run_id == parent.info.run_id
        assert (store / "artifacts" / parent.info.run_id / "artifacts" / "report.html").is_file()
