"""End to end: the whole pipeline through kfp.local (subprocess runner, one process per task, as in the cluster)
on a tiny generated dataset with two offline backbones, each trained in a task of its own as on a cluster, against
`hubpipe run` on the same data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_pipeline import (
    TINY_EXAMPLES,
    WHOLE_PIPELINE_MARKS,
    assert_same_kinds_of_artifacts,
    assert_trained_side_by_side,
    folder_output,
    outputs,
    run_through_kfp,
    stage_task,
    two_backbones_config,
)

pytestmark = WHOLE_PIPELINE_MARKS


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same configuration run through kfp.local and through the local runner; both run folders."""
    from kfp import local

    from hubpipe.pipeline.local_runner import run_pipeline

    root = tmp_path_factory.mktemp("kfp-e2e")
    kfp_run = run_through_kfp(
        local.SubprocessRunner(use_venv=False), root / "kfp", two_backbones_config(root, root / "published-kfp")
    )
    local_run = root / "local"
    run_pipeline(two_backbones_config(root, root / "published-local"), local_run)
    return kfp_run, local_run


def test_every_stage_produces_the_same_kinds_of_artifacts_as_hubpipe_run(runs) -> None:
    assert_same_kinds_of_artifacts(*runs)


def test_each_backbone_trains_in_its_own_task_and_evaluate_sees_them_all(runs) -> None:
    assert_trained_side_by_side(*runs)


def test_the_typed_outputs_are_filled(runs) -> None:
    kfp_run, _ = runs
    ingest = outputs(kfp_run, "ingest")
    assert ingest["examples"]["metadata"]["examples_written"] == TINY_EXAMPLES
    assert ingest["metrics"]["metadata"]["train_examples"] == 40.0
    assert "<h1>Ingest</h1>" in Path(ingest["report"]["uri"]).read_text()
    validate = outputs(kfp_run, "validate")
    assert validate["validation"]["metadata"]["verdict"] == "passed"
    report = Path(validate["report"]["uri"]).read_text()
    assert report == (folder_output(kfp_run, "validate") / "report.html").read_text()
    train = outputs(kfp_run, stage_task("train"))
    assert train["model"]["metadata"]["best_model"] in ("efficientnet_lite0", "efficientnet_lite1", "scratch_cnn")
    assert {"models.efficientnet_lite1.test_accuracy", "models.scratch_cnn.test_accuracy"} <= set(
        train["metrics"]["metadata"]
    )
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
