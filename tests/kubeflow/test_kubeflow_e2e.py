"""End to end: the whole pipeline through kfp.local (subprocess runner, one process per task, as in the cluster)
on a tiny generated dataset and a tiny local backbone, against `hubpipe run` on the same data."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from hubpipe.pipeline.config import PipelineConfig, load_config
from hubpipe.pipeline.stages import registered_stages

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:You may be attemping to run a task that uses custom:RuntimeWarning"),
]

TESTS = Path(__file__).resolve().parents[1]


def tiny_backbone(path: Path) -> Path:
    """The train tests' tiny SavedModel feature extractor (32 px in, 16 features out)."""
    spec = importlib.util.spec_from_file_location("kubeflow_train_fixtures", TESTS / "train" / "train_fixtures.py")
    fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    return fixtures.write_tiny_backbone(path)


def tiny_config(root: Path, publish_root: Path) -> PipelineConfig:
    from hubpipe.data.sample import SampleSpec, generate

    data = root / "data"
    if not data.exists():
        generate(data, SampleSpec(train_per_class=4, test_per_class=2))
    backbone = root / "backbone"
    if not backbone.exists():
        tiny_backbone(backbone)
    overrides = {
        "data.source": str(data),
        "data.image_size": 32,
        "validate.min_images_per_class": 2,
        "train.backbones": [str(backbone)],
        "train.epochs": 2,
        "train.batch_size": 8,
        "train.baseline_epochs": 1,
        "train.precision": "float32",
        "publish.root": str(publish_root),
    }
    return load_config(overrides=overrides)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same configuration run through kfp.local and through the local runner; both run folders."""
    from kfp import local

    from hubpipe.pipeline.kubeflow.options import KubeflowOptions
    from hubpipe.pipeline.kubeflow.pipeline import create_pipeline
    from hubpipe.pipeline.runner import run_pipeline

    root = tmp_path_factory.mktemp("kfp-e2e")
    kfp_root = root / "kfp"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(kfp_root))
    pipeline = create_pipeline(tiny_config(root, root / "published-kfp"), KubeflowOptions(), registered_stages())
    pipeline()
    (kfp_run,) = kfp_root.iterdir()
    local_run = root / "local"
    run_pipeline(tiny_config(root, root / "published-local"), local_run)
    return kfp_run, local_run


def outputs(kfp_run: Path, stage: str) -> dict[str, dict]:
    """A task's output artifacts as kfp.local recorded them: name -> {uri, metadata, ...}."""
    recorded = json.loads((kfp_run / stage / "executor_output.json").read_text())["artifacts"]
    return {name: entry["artifacts"][0] for name, entry in recorded.items()}


def folder_output(kfp_run: Path, stage: str) -> Path:
    from hubpipe.pipeline.kubeflow.pipeline import load_shell

    spec = next(spec for spec in registered_stages() if spec.name == stage)
    return kfp_run / stage / load_shell(spec).OUTPUT


def test_every_stage_produces_the_same_kinds_of_artifacts_as_hubpipe_run(runs) -> None:
    kfp_run, local_run = runs
    local_report = json.loads((local_run / "run.json").read_text())
    assert local_report["status"] == "succeeded"
    for record in local_report["stages"]:
        manifest = json.loads((folder_output(kfp_run, record["name"]) / "manifest.json").read_text())
        assert set(manifest["artifacts"]) == set(record["artifacts"]), record["name"]
        assert set(manifest["results"]) == set(record["results"]), record["name"]
        for relative in manifest["artifacts"].values():
            assert (folder_output(kfp_run, record["name"]) / relative).exists(), (record["name"], relative)
    assert {record["name"] for record in local_report["stages"]} == {spec.name for spec in registered_stages()}


def test_the_typed_outputs_are_filled(runs) -> None:
    kfp_run, _ = runs
    ingest = outputs(kfp_run, "ingest")
    assert ingest["examples"]["metadata"]["examples_written"] == 60
    assert ingest["metrics"]["metadata"]["train_examples"] == 40.0
    assert "<h1>Ingest</h1>" in Path(ingest["report"]["uri"]).read_text()
    validate = outputs(kfp_run, "validate")
    assert validate["validation"]["metadata"]["verdict"] == "passed"
    report = Path(validate["report"]["uri"]).read_text()
    assert report == (folder_output(kfp_run, "validate") / "report.html").read_text()
    train = outputs(kfp_run, "train")
    assert train["model"]["metadata"]["best_model"] in ("backbone", "scratch_cnn")
    viewer = json.loads(Path(train["mlpipeline_ui_metadata"]["uri"]).read_text())
    assert viewer["outputs"] == [{"type": "tensorboard", "source": f"{train['model']['uri']}/logs"}]
    assert "# train" in Path(train["summary"]["uri"]).read_text()
    evaluate = outputs(kfp_run, "evaluate")
    matrix = evaluate["confusion_matrix"]["metadata"]["confusionMatrix"]
    assert len(matrix["annotationSpecs"]) == 10 and len(matrix["rows"]) == 10
    assert sum(sum(row["row"]) for row in matrix["rows"]) == 20  # every test image once
    assert any(name.endswith(".accuracy") for name in evaluate["metrics"]["metadata"])
    assert "data:image/png;base64," in Path(evaluate["report"]["uri"]).read_text()
    publish = outputs(kfp_run, "publish")
    assert publish["publication"]["metadata"]["logs"].startswith(str(kfp_run.parents[1] / "published-kfp"))
    assert "# publish" in Path(publish["summary"]["uri"]).read_text()
