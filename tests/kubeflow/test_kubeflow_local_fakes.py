"""The pipeline factory's wiring, run through kfp.local (subprocess runner) over toy stages: fast, no TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path

import kfp_fake_stages
import pytest

from hubpipe.pipeline.core.config import load_config
from hubpipe.pipeline.kubeflow.options import KubeflowOptions
from hubpipe.pipeline.kubeflow.pipeline_definition import create_pipeline


@pytest.fixture
def local_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Runs the toy pipeline with kfp.local; returns a function that runs it and finds a task's outputs."""
    from kfp import local

    monkeypatch.setenv("PYTHONPATH", str(Path(kfp_fake_stages.__file__).parent))
    root = tmp_path / "kfp"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    options = KubeflowOptions(image="python:3.11", pvc_name="hubpipe-data")
    pipeline = create_pipeline(
        load_config(overrides={"train.epochs": 3}),
        options,
        list(kfp_fake_stages.SPECS.values()),
        kfp_fake_stages.SHELLS,
    )

    def run(**arguments) -> Path:
        try:
            pipeline(**arguments)
        finally:
            (run.folder,) = root.iterdir()
        return run.folder

    return run


def test_parameters_reach_the_stages_and_outputs_are_typed(local_run) -> None:
    run_dir = local_run(data_source="photos", backbones=["x", "y"])
    ingest = json.loads((run_dir / "fake-ingest" / "examples" / "manifest.json").read_text())
    assert ingest["results"]["source"] == "photos"
    assert (run_dir / "fake-train" / "model" / "model.txt").read_text() == "x,y"
    train = json.loads((run_dir / "fake-train" / "executor_output.json").read_text())["artifacts"]
    assert train["metrics"]["artifacts"][0]["metadata"]["epochs"] == 3.0  # from the compiled config's default
    matrix = train["confusion_matrix"]["artifacts"][0]["metadata"]["confusionMatrix"]
    assert [row["row"] for row in matrix["rows"]] == [[3.0, 1.0], [0.0, 4.0]]
    ui = json.loads((run_dir / "fake-train" / "mlpipeline_ui_metadata").read_text())
    assert ui["outputs"][0]["type"] == "tensorboard" and ui["outputs"][0]["source"].endswith("/model/logs")
    assert "# ingest" in (run_dir / "fake-ingest" / "summary").read_text()
    assert "anomalies of photos" in (run_dir / "fake-validate" / "report").read_text()


def test_a_rejection_keeps_its_report_and_stops_the_run(local_run) -> None:
    with pytest.raises(RuntimeError, match="fake-train"):
        local_run(data_source="reject-me")
    validate = json.loads((local_run.folder / "fake-validate" / "validation" / "manifest.json").read_text())
    assert validate["rejected"] == "class 'x' has no images"
    assert "anomalies of reject-me" in (local_run.folder / "fake-validate" / "report").read_text()
    assert not (local_run.folder / "fake-train" / "model" / "model.txt").exists()
