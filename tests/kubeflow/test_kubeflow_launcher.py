"""The launcher that runs a stage inside a KFP task, called directly with kfp artifact objects (no KFP run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kfp_fake_stages import SPECS

from hubpipe.pipeline.core.config import load_config, to_dict
from hubpipe.pipeline.core.errors import DataRejected, StageError
from hubpipe.pipeline.core.stage import StageResult
from hubpipe.pipeline.kubeflow import launcher, ui_outputs
from hubpipe.pipeline.kubeflow.launcher import launch, run_stage
from hubpipe.pipeline.kubeflow.ui_outputs import Launched


@pytest.fixture(autouse=True)
def _keep_pytest_logging(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """launch() sets up logging as in a task's container; here pytest's capture must stay in place."""
    monkeypatch.setattr(launcher, "configure_logging", lambda debug: None)
    monkeypatch.setenv("HUBPIPE_CACHE_DIR", str(tmp_path / "cache"))


def artifact(kind: str, path: Path):
    """A kfp.dsl artifact of ``kind`` at a local path, as KFP hands them to a component."""
    from kfp import dsl

    return getattr(dsl, kind)(name=path.name, uri=str(path))


@pytest.fixture
def ingested(tmp_path: Path) -> Path:
    output = tmp_path / "ingest"
    run_stage(SPECS["ingest"], load_config(overrides={"data.source": "here"}), {}, output)
    return output


def test_run_stage_writes_the_same_manifest_as_the_local_runner(ingested: Path) -> None:
    manifest = json.loads((ingested / "manifest.json").read_text())
    assert set(manifest) == {
        "stage", "fingerprint", "inputs", "started", "duration_s", "artifacts", "results", "rejected", "files"
    }  # fmt: skip
    assert manifest["stage"] == "ingest"
    assert manifest["artifacts"] == {"examples": "examples", "report": "report.html"}
    assert manifest["results"]["source"] == "here"
    assert manifest["inputs"]["parameters"]["data"]["source"] == "here"
    assert len(manifest["fingerprint"]) == 64
    assert set(manifest["files"]) >= {"report.html"} and len(manifest["files"]["report.html"]["sha256"]) == 64


def test_a_retried_task_starts_from_an_empty_folder(tmp_path: Path) -> None:
    output = tmp_path / "ingest"
    (output / "stale").mkdir(parents=True)
    (output / "stale" / "leftover.txt").write_text("from the failed attempt")
    run_stage(SPECS["ingest"], load_config(), {}, output)
    assert not (output / "stale").exists()
    assert (output / "manifest.json").is_file()


def test_upstream_rejection_stops_the_next_stage(tmp_path: Path) -> None:
    config = load_config(overrides={"data.source": "reject-me"})
    run_stage(SPECS["ingest"], config, {}, tmp_path / "ingest")
    result, manifest = run_stage(SPECS["validate"], config, {"ingest": tmp_path / "ingest"}, tmp_path / "validate")
    assert result.rejected and manifest["rejected"] == result.rejected
    inputs = {"ingest": tmp_path / "ingest", "validate": tmp_path / "validate"}
    with pytest.raises(DataRejected, match="stage validate rejected the data, so train does not run"):
        run_stage(SPECS["train"], config, inputs, tmp_path / "train")


def test_missing_or_foreign_inputs_are_stage_errors(tmp_path: Path, ingested: Path) -> None:
    with pytest.raises(StageError, match="needs the output of ingest"):
        run_stage(SPECS["validate"], load_config(), {}, tmp_path / "v1")
    (tmp_path / "foreign").mkdir()
    with pytest.raises(StageError, match=r"has no readable manifest\.json"):
        run_stage(SPECS["validate"], load_config(), {"ingest": tmp_path / "foreign"}, tmp_path / "v2")


def test_launch_fills_the_typed_outputs(tmp_path: Path, ingested: Path) -> None:
    model = artifact("Model", tmp_path / "out" / "model")
    metrics = artifact("Metrics", tmp_path / "out" / "metrics")
    matrix = artifact("ClassificationMetrics", tmp_path / "out" / "confusion")
    viewer = artifact("Artifact", tmp_path / "out" / "mlpipeline_ui_metadata")
    summary = artifact("Markdown", tmp_path / "out" / "summary")
    validated = tmp_path / "validate"
    run_stage(SPECS["validate"], load_config(), {"ingest": ingested}, validated)
    from kfp_fake_stages import log_confusion_matrix

    launch(
        SPECS["train"],
        to_dict(load_config()),
        {"epochs": 4, "backbones": ["a", "b"]},
        output=model,
        inputs={"ingest": artifact("Dataset", ingested), "validate": artifact("Artifact", validated)},
        fill=[
            (metrics, ui_outputs.log_metrics),
            (matrix, log_confusion_matrix),
            (viewer, ui_outputs.tensorboard_viewer("tensorboard")),
            (summary, ui_outputs.write_summary),
        ],
    )
    assert (Path(model.path) / "model.txt").read_text() == "a,b"
    assert model.metadata["epochs"] == 4 and model.metadata["hubpipe_version"]
    assert metrics.metadata == {"accuracy": 0.875, "epochs": 4.0, "blessed": 1.0}
    assert [spec["displayName"] for spec in matrix.metadata["confusionMatrix"]["annotationSpecs"]] == ["a", "b"]
    ui = json.loads(Path(viewer.path).read_text())
    assert ui["outputs"] == [{"type": "tensorboard", "source": f"{model.uri}/logs"}]
    text = Path(summary.path).read_text()
    assert "| accuracy | 0.875 |" in text and "succeeded" in text


def test_launch_ends_a_user_error_with_one_line_and_its_exit_code(tmp_path: Path, caplog) -> None:
    model = artifact("Model", tmp_path / "model")
    with pytest.raises(SystemExit) as stopped:
        launch(SPECS["train"], to_dict(load_config()), {"epochs": 0}, output=model)
    assert stopped.value.code == 2
    assert "train.epochs must be between 1 and 1000" in caplog.text
    with pytest.raises(SystemExit) as stopped:
        launch(SPECS["train"], to_dict(load_config()), {"no_such_parameter": 1}, output=model)
    assert stopped.value.code == 2
    with pytest.raises(SystemExit) as stopped:
        launch("no-such-stage", to_dict(load_config()), {}, output=model)
    assert stopped.value.code == 1


def test_keep_previous_hands_the_last_folder_to_the_next_run(tmp_path: Path, monkeypatch) -> None:
    seen: list[Path | None] = []
    real_run_stage = launcher.run_stage

    def spy(spec, config, inputs, output_dir, previous_dir=None):
        seen.append(previous_dir)
        return real_run_stage(spec, config, inputs, output_dir, previous_dir)

    monkeypatch.setattr(launcher, "run_stage", spy)
    config = to_dict(load_config())
    for attempt in ("first", "second"):
        output = artifact("Dataset", tmp_path / attempt)
        launch(SPECS["ingest"], config, {"data_source": attempt}, output=output, keep_previous=True)
    assert seen[0] is None
    assert seen[1] == launcher.previous_location("ingest")
    assert (seen[1] / "examples" / "train.txt").read_text() == "second"


def fake_launched(tmp_path: Path, artifacts: dict[str, str], results: dict | None = None) -> Launched:
    manifest = {"duration_s": 1.5, "results": results or {}, "artifacts": artifacts, "rejected": None}
    result = StageResult(results=results or {}, artifacts=artifacts)
    return Launched(SPECS["ingest"], result, manifest, tmp_path, "s3://bucket/run/ingest", {}, load_config())


def test_the_markdown_summary_shows_class_names_as_literal_text(tmp_path: Path) -> None:
    names = ["<img src=x onerror=alert(1)>", "[click](http://evil.example)", "a|b", "gif\u202egpj.exe", "**bold**"]
    results = {"classes": names, "per_class": {"[x](y)": 1}}
    summary = artifact("Markdown", tmp_path / "summary.md")
    stage = fake_launched(tmp_path, {}, results)
    stage.manifest["rejected"] = "unexpected class <b>owls</b>"
    ui_outputs.write_summary(stage, summary)
    text = Path(summary.path).read_text()
    assert "**rejected**: unexpected class &lt;b&gt;owls&lt;/b&gt;" in text
    assert "<img" not in text and "&lt;img src=x onerror=alert\\(1\\)&gt;" in text
    assert "](" not in text and "\\[click\\]\\(http://evil.example\\)" in text
    assert "\u202e" not in text and "gif\\\\u202egpj.exe" in text  # an escaped backslash: shows as \u202e
    assert "a\\|b" in text and "\\*\\*bold\\*\\*" in text
    assert "| per\\_class.\\[x\\]\\(y\\) | 1 |" in text
    assert all(line.count("|") - line.count("\\|") == 3 for line in text.splitlines() if line.startswith("| "))


def test_html_report_renders_json_tables_images_and_text(tmp_path: Path) -> None:
    (tmp_path / "quarantine.json").write_text(json.dumps([{"path": "a<b>.jpg", "reason": "truncated"}]))
    (tmp_path / "images" / "m").mkdir(parents=True)
    (tmp_path / "images" / "m" / "confusion.png").write_bytes(b"\x89PNG fake")
    (tmp_path / "notes.txt").write_text("plain & simple")
    stage = fake_launched(tmp_path, {"quarantine": "quarantine.json", "images": "images", "notes": "notes.txt"})
    page = artifact("HTML", tmp_path / "report.html")
    ui_outputs.html_report("Ingest", "quarantine", "images", "notes", "absent")(stage, page)
    html = Path(page.path).read_text()
    assert "<th>path</th><th>reason</th>" in html and "a&lt;b&gt;.jpg" in html
    assert "data:image/png;base64," in html and "m/confusion.png" in html
    assert "<pre>plain &amp; simple</pre>" in html
    assert "<h2>absent</h2><p>not produced by this run</p>" in html


def test_copy_file_leaves_a_note_for_a_missing_artifact(tmp_path: Path) -> None:
    stage = fake_launched(tmp_path, {"report": "report.html"})
    target = artifact("HTML", tmp_path / "copy.html")
    ui_outputs.copy_file("report")(stage, target)
    assert "produced no report" in Path(target.path).read_text()
    (tmp_path / "report.html").write_text("<p>the report</p>")
    ui_outputs.copy_file("report")(stage, target)
    assert Path(target.path).read_text() == "<p>the report</p>"


def test_results_are_flattened_for_metrics_and_metadata(tmp_path: Path) -> None:
    results = {"models": {"b0": {"accuracy": 0.9}}, "note": "ok", "list": [1, 2], "none": None, "flag": False}
    assert ui_outputs.scalar_results(results) == {"models.b0.accuracy": 0.9, "note": "ok", "flag": False}
    metrics = artifact("Metrics", tmp_path / "metrics")
    ui_outputs.log_metrics(fake_launched(tmp_path, {}, results), metrics)
    assert metrics.metadata == {"models.b0.accuracy": 0.9, "flag": 0.0}


def test_a_stage_without_logs_gets_an_empty_viewer(tmp_path: Path) -> None:
    viewer = artifact("Artifact", tmp_path / "ui")
    ui_outputs.tensorboard_viewer("logs")(fake_launched(tmp_path, {}), viewer)
    assert json.loads(Path(viewer.path).read_text()) == {"version": 1, "outputs": []}
