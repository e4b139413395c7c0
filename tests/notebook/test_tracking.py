"""MLflow tracking against a real `mlflow server` (SQLite backend, local artifact store), into a local folder without
a server, and with the server down."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tiny_pipeline as tiny
from notebook_fixtures import mlflow_server, tiny_config, tiny_config_file
from processes import free_port

from hubpipe.components.publish.layout import publication_links
from hubpipe.pipeline.core.config import PipelineConfig, replace
from hubpipe.pipeline.local_runner import run_pipeline
from hubpipe.pipeline.tracking.run_tracking import TrackingTarget, flatten, stages_to_log, track_run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MODEL_NAME = "tiny-classifier"
LINK_KEYS = ("run_folder", "publish_root", "tensorboard_logs", "published_version")


def tracked(config: PipelineConfig, uri: str) -> PipelineConfig:
    """``config`` logging to ``uri``, with a gate every model passes (so a model is blessed and registered)."""
    gate = replace(config.evaluate, min_accuracy=0.0, min_margin_over_baseline=-1.0, max_drop_vs_blessed=1.0)
    return replace(config, evaluate=gate, track=replace(config.track, mlflow_uri=uri, registered_model=MODEL_NAME))


def utc_ms(stamp: str) -> int:
    """An ISO-8601 UTC time in milliseconds since the epoch (model.json's train_started/train_finished)."""
    return round(dt.datetime.fromisoformat(stamp).replace(tzinfo=dt.UTC).timestamp() * 1000)


def run_links(run_dir: Path, run_file: dict) -> dict:
    """The links tracking tags a run with: run.json's, else what publish.json tells and the run folder."""
    if "links" in run_file:
        return run_file["links"]
    publication = json.loads((run_dir / "publish" / "publish.json").read_text())
    return {"run_folder": str(run_dir), **publication_links(publication)}


def check_dataset(client, run_id: str, stage_dir: Path, name: str, source: str) -> None:
    """``run_id`` has one dataset input: the ingest output that the stage in ``stage_dir`` read (the digest its
    manifest records), named ``name``, from the local folder ``source``."""
    (dataset_input,) = client.get_run(run_id).inputs.dataset_inputs
    ingest = json.loads((stage_dir / "manifest.json").read_text())["inputs"]["upstream"]["ingest"]
    dataset = dataset_input.dataset
    assert (dataset.name, dataset.digest, dataset.source_type) == (name, ingest[:12], "local")
    assert json.loads(dataset.source) == {"uri": source}
    tags = {tag.key: tag.value for tag in dataset_input.tags}
    assert tags == {"mlflow.data.context": "train", "hubpipe.ingest_digest": ingest}


def check_gate(parent, blessing: dict) -> None:
    """The parent run has each check of each candidate: value, 95% interval, p-value and rule."""
    checks = [check for check in blessing["checks"] if check["value"] is not None]
    assert checks and any(check["interval"] for check in checks)
    for check in checks:
        key = f"gate.{check['candidate']}.{check['name']}"
        assert parent.data.metrics[key] == pytest.approx(check["value"])
        if check["interval"]:
            low, high = check["interval"]
            assert (parent.data.metrics[f"{key}.low"], parent.data.metrics[f"{key}.high"]) == pytest.approx((low, high))
        if check["p_value"] is not None:
            assert parent.data.metrics[f"{key}.p_value"] == pytest.approx(check["p_value"])
        assert parent.data.tags[f"{key}.rule"] == check["rule"]


def check_version(client, version, run_name: str, run_dir: Path, links: dict) -> None:
    """The registered ``version`` is described and tagged with the run name, the blessed model's backbone and
    test accuracy with its interval, the evaluation id and the links; the alias ``champion`` names it."""
    blessing = json.loads((run_dir / "evaluate" / "blessing.json").read_text())
    blessed = blessing["blessed"]
    scores = json.loads((run_dir / "evaluate" / "metrics" / f"{blessed}.json").read_text())
    model = json.loads((run_dir / "train" / "models" / blessed / "model.json").read_text())
    low, high = scores["accuracy_interval"]
    evaluation = links.get("evaluation_id") or blessing["evaluation_id"]
    expected = {
        "run_name": run_name,
        "model": blessed,
        "backbone": model["backbone"]["name"],
        "accuracy": f"{scores['accuracy']:.4f}",
        "accuracy_interval": f"[{low:.4f}, {high:.4f}]",
        "evaluation_id": evaluation,
        **{key: links[key] for key in LINK_KEYS if links.get(key)},
    }
    assert expected.items() <= version.tags.items(), version.tags
    for text in (run_name, blessed, f"{scores['accuracy']:.4f}", f"95% interval [{low:.4f}, {high:.4f}]", evaluation):
        assert text in version.description
    assert all(links[key] in version.description for key in LINK_KEYS if links.get(key))
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == version.version


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


def test_sources_spans_and_gate_names_as_mlflow_takes_them() -> None:
    from hubpipe.components.evaluate.intervals import Interval
    from hubpipe.components.evaluate.layout import Blessing, Check
    from hubpipe.pipeline.tracking.mlflow_logging import dataset_source, gate_metrics, training_span

    def source(configured: str, described: dict) -> tuple[str, dict]:
        found = dataset_source(configured, described)
        return found._get_source_type(), json.loads(found.to_json())

    sample = {"kind": "sample", "description": "the embedded sample dataset (seed 0)", "location": "/cache/x"}
    assert source("sample", sample) == (
        "code",
        {"tags": {"data.source": "sample", "description": sample["description"]}},
    )
    url = "https://example.com/food.zip"
    assert source("food101_10pct", {"kind": "url", "description": url}) == ("http", {"url": url})
    assert source("food101_10pct", {})[0] == "http"  # on Kubeflow: the preset's URL
    assert source("/data/x", {"kind": "directory", "description": "/data/x"}) == ("local", {"uri": "/data/x"})
    assert source("gs://bucket/images", {}) == ("gs", {"uri": "gs://bucket/images"})

    assert training_span(
        {"train_started": "2026-01-02T03:04:05.678+00:00", "train_finished": "2026-01-02T03:04:07+00:00"}
    )
    start, end = training_span(
        {"train_started": "2026-01-02T03:04:05.678+00:00", "train_finished": "2026-01-02T03:04:07"}
    )
    assert (start, end - start) == (utc_ms("2026-01-02T03:04:05.678"), 1322)
    assert training_span({"train_seconds": 3.0}) is None  # an older model.json: the child run is "now", as before
    assert training_span({"train_started": "2026-01-02T03:04:07", "train_finished": "2026-01-02T03:04:05"}) is None

    checks = (
        Check(
            "lite/0:x", "max_drop_vs_blessed", 0.01, 0.02, True, "", Interval(-0.03, 0.05), 0.5, "rule 1", "interval"
        ),
        Check("lite/0:x", "min_accuracy", 0.9, 0.5, True, "", Interval(0.8, 0.95), None, "rule 2", "interval"),
        Check("b", "margin_over_baseline", None, 0.1, None, "skipped: no baseline"),
    )
    metrics, tags = gate_metrics(Blessing(checks=checks), 7)
    assert {m.key: m.value for m in metrics} == {
        "gate.lite_0_x.max_drop_vs_blessed": 0.01,
        "gate.lite_0_x.max_drop_vs_blessed.low": -0.03,
        "gate.lite_0_x.max_drop_vs_blessed.high": 0.05,
        "gate.lite_0_x.max_drop_vs_blessed.p_value": 0.5,
        "gate.lite_0_x.min_accuracy": 0.9,
        "gate.lite_0_x.min_accuracy.low": 0.8,
        "gate.lite_0_x.min_accuracy.high": 0.95,
    }
    assert {t.key: t.value for t in tags} == {
        "gate.lite_0_x.max_drop_vs_blessed.rule": "rule 1",
        "gate.lite_0_x.min_accuracy.rule": "rule 2",
    }


def test_run_logs_to_a_real_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient

    config = tiny_config(tmp_path)
    environment = os.environ.get("MLFLOW_TRACKING_URI")
    with mlflow_server(tmp_path / "mlflow") as uri:
        report = run_pipeline(tracked(config, uri), tmp_path / "run")
        assert report.tracking["status"] == "logged", report.tracking
        # MLflow exports the URI it logs the model with; a later untracked run in this process must not inherit it
        assert os.environ.get("MLFLOW_TRACKING_URI") == environment and report.tracking.get("model_version")
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

        # the parent run: named by the run name, tagged with the links; the gate's intervals; the dataset
        run_dir = tmp_path / "run"
        run_file = json.loads((run_dir / "run.json").read_text())
        run_name, links = run_file.get("name") or run_dir.name, run_links(run_dir, run_file)
        assert parent.info.run_name == run_name and parent.data.tags["hubpipe.run_name"] == run_name
        assert parent.data.tags["hubpipe.run_folder"] == str(run_dir)
        assert (Path(links["published_version"]) / "version.json").is_file()
        for key in LINK_KEYS:
            assert parent.data.tags[f"hubpipe.link.{key}"] == links[key]
        blessing = json.loads((run_dir / "evaluate" / "blessing.json").read_text())
        assert parent.data.tags["hubpipe.evaluation_id"] == blessing["evaluation_id"]
        check_gate(parent, blessing)
        summary = json.loads((run_dir / "ingest" / "summary.json").read_text())
        description = summary["source"]["description"]
        assert description == str((tmp_path / "data").resolve())
        for run_id in (parent.info.run_id, *(child.info.run_id for child in children.values())):
            check_dataset(client, run_id, run_dir / "train", description, description)
        run_url = f"{uri}/#/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}"
        assert report.tracking["run_url"] == run_url and run_file["tracking"]["run_url"] == run_url
        assert report.tracking["experiment_id"] == experiment.experiment_id
        # the child runs: their real training time, the accuracy's interval
        for name, child in children.items():
            model = json.loads((run_dir / "train" / "models" / name / "model.json").read_text())
            start, end = utc_ms(model["train_started"]), utc_ms(model["train_finished"])
            assert (child.info.start_time, child.info.end_time) == (start, end)
            assert parent.info.start_time <= start and end <= parent.info.end_time  # the parent spans its children
            assert end - start == pytest.approx(model["train_seconds"] * 1000, abs=50) and end - start > 300
            times = [m.timestamp for m in client.get_metric_history(child.info.run_id, "loss")]
            assert times and all(start < time <= end for time in times) and times == sorted(times)
            low, high = json.loads((run_dir / "evaluate" / "metrics" / f"{name}.json").read_text())["accuracy_interval"]
            assert (child.data.metrics["test_accuracy_low"], child.data.metrics["test_accuracy_high"]) == (
                pytest.approx((low, high))
            )
        check_version(client, client.get_model_version(MODEL_NAME, version.version), run_name, run_dir, links)

        image = sorted((tmp_path / "data" / "test").rglob("*.jpg"))[0].read_bytes()
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # as a user who loads the model sets it
        model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")  # the alias names this version
        predicted = model.predict(pd.DataFrame({"image": [image, image]}))
        classes = (tmp_path / "run" / "ingest" / "labels.txt").read_text().split()
        assert list(predicted.columns) == ["label", "probability"] and predicted["label"][0] in classes
        assert 0.0 < predicted["probability"][0] <= 1.0

        again = run_pipeline(tracked(config, uri), tmp_path / "run")  # every stage cached: nothing logged twice
        assert {s.status for s in again.stages} == {"cached"}
        assert again.tracking["status"] == "up_to_date" and again.tracking["run_url"] == run_url
        assert len(client.search_runs([experiment.experiment_id])) == len(runs)

        # run.json's name and links (the runner's), logged into another experiment: the parent run's name and
        # link tags, and the registered version's, are those; the alias moves to the new version
        run_file = json.loads((run_dir / "run.json").read_text())
        links = {
            "run_folder": str(run_dir),
            "publish_root": str(tmp_path / "published"),
            "tensorboard_logs": str(tmp_path / "published" / "tensorboard" / "named"),
            "published_version": str(tmp_path / "published" / "models" / "named"),
            "evaluation_id": "20260101T000000Z-named",
        }
        (run_dir / "run.json").write_text(json.dumps({**run_file, "name": "tiny comparison", "links": links}))
        named = tracked(config, uri)
        entry = track_run(replace(named, track=replace(named.track, experiment="named")), run_dir, True)
        assert entry["status"] == "logged", entry
        other = client.get_experiment_by_name("named")
        assert entry["experiment_id"] == other.experiment_id
        assert entry["run_url"] == f"{uri}/#/experiments/{other.experiment_id}/runs/{entry['run_id']}"
        parent = client.get_run(entry["run_id"])
        assert parent.info.run_name == "tiny comparison" and parent.data.tags["hubpipe.run_name"] == "tiny comparison"
        assert parent.data.tags["hubpipe.evaluation_id"] == links["evaluation_id"]
        assert {key: parent.data.tags[f"hubpipe.link.{key}"] for key in LINK_KEYS} == {k: links[k] for k in LINK_KEYS}
        new_version = client.get_model_version(MODEL_NAME, entry["model_version"])
        assert int(new_version.version) == int(version.version) + 1
        check_version(client, new_version, "tiny comparison", run_dir, links)


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
        evaluation_id = json.loads((evaluation / "blessing.json").read_text())["evaluation_id"]
        publication = json.loads((tiny.folder_output(run, "publish") / "publish.json").read_text())
        assert parent.info.run_name == (publication.get("run_name") or evaluation_id)
        assert parent.data.tags["hubpipe.evaluation_id"] == evaluation_id == publication["run_id"]
        assert parent.data.tags["hubpipe.link.publish_root"] == publication["root"] == str(tmp_path / "published")
        assert parent.data.tags["hubpipe.link.tensorboard_logs"] == publication["logs_dir"]
        version_dir = Path(parent.data.tags["hubpipe.link.published_version"])
        assert (version_dir / "version.json").is_file() and "hubpipe.link.run_folder" not in parent.data.tags
        data = str(tmp_path / "data")  # the setting: the ingest folder is not an input of the publish task
        check_dataset(client, parent.info.run_id, evaluation, data, data)  # the train folder is collected: no ingest
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


def test_run_logs_into_a_local_folder_without_a_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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
        assert tracking["run_url"] == ""  # no server: no page
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

    # an error while logging: the run goes on, tracking says so, and the parent run is FAILED (it used to stay
    # RUNNING, or FINISHED once the model was logged, which ends the run MLflow's fluent API started)
    from hubpipe.pipeline.tracking import mlflow_logging

    def broken_report(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(mlflow_logging, "_log_report", broken_report)
    config = replace(tiny_config(tmp_path), track=replace(tiny_config(tmp_path).track, experiment="broken"))
    config = replace(config, track=replace(config.track, mlflow_uri=str(tmp_path / "plain")))
    entry = track_run(config, tmp_path / "run", succeeded=True)
    assert entry["status"] == "failed" and "disk full" in entry["error"]
    client = MlflowClient(f"sqlite:///{tmp_path / 'plain'}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("broken").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.status == "FAILED"
