"""The whole pipeline on a tiny generated dataset and a tiny local backbone, through kfp.local (any runner) and
through the local runner: shared by the subprocess end-to-end test, the container tests and the API, tracking,
notebook and fault-injection tests, which import it by name (pytest.ini's pythonpath holds tests/kubeflow)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from hubpipe.pipeline.core.config import PipelineConfig, apply_overrides, load_config
from hubpipe.pipeline.stages import registered_stages

TESTS = Path(__file__).resolve().parents[1]
#: Images in the tiny dataset: 10 classes x (4 train + 2 test).
TINY_EXAMPLES = 60
#: The two offline presets of the fan-out tests: on Kubeflow each trains in its own task, the baseline in a third.
TWO_BACKBONES = ("efficientnet_lite0", "efficientnet_lite1")
#: The marks of a test module that runs the whole pipeline through kfp.local.
WHOLE_PIPELINE_MARKS = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:You may be attemping to run a task that uses custom:RuntimeWarning"),
]


def tiny_backbone(path: Path) -> Path:
    """The train tests' tiny SavedModel feature extractor (32 px in, 16 features out)."""
    spec = importlib.util.spec_from_file_location("kubeflow_train_fixtures", TESTS / "train" / "train_fixtures.py")
    fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    return fixtures.write_tiny_backbone(path)


def tiny_config(root: Path, publish_root: Path) -> PipelineConfig:
    """Data and backbone made once under ``root``; everything else small and fixed (same results on rerun)."""
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


def two_backbones_config(root: Path, publish_root: Path) -> PipelineConfig:
    """:func:`tiny_config` with the two offline presets instead of the tiny backbone, one epoch each."""
    return apply_overrides(tiny_config(root, publish_root), {"train.backbones": list(TWO_BACKBONES), "train.epochs": 1})


def run_through_kfp(runner: Any, pipeline_root: Path, config: PipelineConfig, options: Any = None) -> Path:
    """Runs the Kubeflow pipeline of ``config`` with kfp.local's ``runner``; returns the run's folder.

    ``options`` are the pipeline's :class:`KubeflowOptions` (the image among them); the defaults if None.
    """
    from kfp import local

    from hubpipe.pipeline.kubeflow.options import KubeflowOptions
    from hubpipe.pipeline.kubeflow.pipeline_definition import create_pipeline

    before = set(pipeline_root.iterdir()) if pipeline_root.exists() else set()
    local.init(runner=runner, pipeline_root=str(pipeline_root))
    create_pipeline(config, options or KubeflowOptions(), registered_stages())()
    published = Path(config.publish.root)
    (run,) = {path for path in pipeline_root.iterdir() if path not in before and path != published}
    return run


def stage_task(stage: str) -> str:
    """The task whose output is ``stage``'s folder: the stage's own, or the collect task of a fanned-out stage
    (train: ``train-collect``; its tasks per backbone are ``train``, ``train-2``, ...)."""
    from hubpipe.pipeline.kubeflow.pipeline_definition import load_shell

    collect = getattr(load_shell(next(spec for spec in registered_stages() if spec.name == stage)), "COLLECT", "")
    return collect.replace("_", "-") or stage


def outputs(kfp_run: Path, task: str) -> dict[str, dict]:
    """A task's output artifacts as kfp.local recorded them: name -> {uri, metadata, ...}."""
    recorded = json.loads((kfp_run / task / "executor_output.json").read_text())["artifacts"]
    return {name: entry["artifacts"][0] for name, entry in recorded.items()}


def folder_output(kfp_run: Path, stage: str) -> Path:
    """The folder of ``stage`` in a kfp.local run (of a fanned-out stage: the collected one)."""
    from hubpipe.pipeline.kubeflow.pipeline_definition import load_shell

    spec = next(spec for spec in registered_stages() if spec.name == stage)
    return kfp_run / stage_task(stage) / load_shell(spec).OUTPUT


def assert_trained_side_by_side(kfp_run: Path, local_run: Path) -> None:
    """Each backbone of :data:`TWO_BACKBONES` and the baseline trained in a task of its own; the collected train
    folder has the models, in order, and accuracies of the train stage of ``hubpipe run``; evaluate scored the
    two backbones as candidates and the baseline as the baseline."""
    models = [*TWO_BACKBONES, "scratch_cnn"]
    for task, model in zip(("train", "train-2", "train-3"), models, strict=True):
        summary = json.loads((kfp_run / task / "model" / "summary.json").read_text())
        assert [row["name"] for row in summary["models"]] == [model], task
        assert sorted(path.name for path in (kfp_run / task / "model" / "models").iterdir()) == [model]
    rows = [
        [(row["name"], row["test_accuracy"]) for row in json.loads((folder / "summary.json").read_text())["models"]]
        for folder in (folder_output(kfp_run, "train"), local_run / "train")
    ]
    assert [name for name, _ in rows[0]] == models
    assert rows[0] == rows[1]
    blessing = json.loads((folder_output(kfp_run, "evaluate") / "blessing.json").read_text())
    assert [candidate["name"] for candidate in blessing["candidates"]] == list(TWO_BACKBONES)
    assert [baseline["name"] for baseline in blessing["baselines"]] == ["scratch_cnn"]
    assert sorted(path.stem for path in (folder_output(kfp_run, "evaluate") / "metrics").glob("*.json")) == models


def assert_same_kinds_of_artifacts(kfp_run: Path, local_run: Path) -> None:
    """Every stage of the kfp run has the artifacts and results that `hubpipe run` recorded for it."""
    local_report = json.loads((local_run / "run.json").read_text())
    assert local_report["status"] == "succeeded"
    for record in local_report["stages"]:
        manifest = json.loads((folder_output(kfp_run, record["name"]) / "manifest.json").read_text())
        assert set(manifest["artifacts"]) == set(record["artifacts"]), record["name"]
        assert set(manifest["results"]) == set(record["results"]), record["name"]
        for relative in manifest["artifacts"].values():
            assert (folder_output(kfp_run, record["name"]) / relative).exists(), (record["name"], relative)
    assert {record["name"] for record in local_report["stages"]} == {spec.name for spec in registered_stages()}
