"""Every stage as a container: the Kubeflow pipeline through kfp.local's DockerRunner, talking to podman's
Docker-compatible API, each task in the project image as its non-root user, against `hubpipe run` on the same
tiny data with two backbones (baked into the image), each trained in a container of its own, the baseline in a
third, and collected in a fourth. DockerRunner mounts only the pipeline root, so the data, the backbone and the
publish root live in it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tiny_pipeline as tiny
from podman import IMAGE_UID, docker_host, new_containers, umask

from hubpipe.pipeline.stages import stage_names

pytestmark = [pytest.mark.container, *tiny.WHOLE_PIPELINE_MARKS]

STAGES = stage_names()
#: The train tasks of the pipeline of two backbones (one per backbone, one for the baseline) besides the collect
#: task, whose folder is the train stage's.
TRAIN_TASKS = ("train", "train-2", "train-3")


def task_folders(kfp_run: Path) -> list[Path]:
    """The folder each task of the run wrote: every stage's, and each train task's."""
    return [tiny.folder_output(kfp_run, stage) for stage in STAGES] + [kfp_run / task / "model" for task in TRAIN_TASKS]


@pytest.fixture(scope="module")
def runs(image: str, docker_api: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny pipeline as containers (DockerRunner) and through the local runner; folders and containers."""
    from kfp import local

    from hubpipe.pipeline.kubeflow.options import KubeflowOptions
    from hubpipe.pipeline.local_runner import run_pipeline

    root = tmp_path_factory.mktemp("containers")
    root.chmod(0o777)  # the pipeline root, mounted into every task, written by the image's user
    local_run = root / "local"
    run_pipeline(tiny.two_backbones_config(root, root / "published-local"), local_run)
    config = tiny.two_backbones_config(root, root / "published-kfp")
    with new_containers(image) as made, docker_host(docker_api), umask(0):
        # the image under test as every component's image
        kfp_run = tiny.run_through_kfp(local.DockerRunner(), root, config, KubeflowOptions(image=image))
        return {"kfp": kfp_run, "local": local_run, "containers": made()}


def test_every_stage_ran_in_its_own_container_of_the_image_as_the_non_root_user(runs, image: str) -> None:
    containers = runs["containers"]
    folders = task_folders(runs["kfp"])
    assert len(containers) == len(set(folders)) == len(STAGES) + len(TRAIN_TASKS)
    assert all(entry["ExitCode"] == 0 for entry in containers), containers
    for folder in folders:
        written = list(folder.rglob("*"))
        assert written, folder
        owners = {path.stat().st_uid for path in written}
        assert owners == {IMAGE_UID}, (folder, owners)  # written inside the container, by uid 10001, never root


def test_each_backbone_trained_in_a_container_of_its_own_and_evaluate_saw_them_all(runs) -> None:
    tiny.assert_trained_side_by_side(runs["kfp"], runs["local"])


def test_the_containers_produce_the_same_kinds_of_artifacts_as_hubpipe_run(runs) -> None:
    tiny.assert_same_kinds_of_artifacts(runs["kfp"], runs["local"])
    ingest = tiny.outputs(runs["kfp"], "ingest")
    assert ingest["examples"]["metadata"]["examples_written"] == tiny.TINY_EXAMPLES
    assert tiny.outputs(runs["kfp"], "validate")["validation"]["metadata"]["verdict"] == "passed"
    publish = tiny.outputs(runs["kfp"], "publish")
    assert publish["publication"]["metadata"]["logs"].startswith(str(runs["kfp"].parent / "published-kfp"))


def model_scores(results: dict) -> dict[str, dict[str, float]]:
    """Per model: its accuracy and macro-F1 figures, as train and evaluate record them in their results."""
    wanted = ("test_accuracy", "accuracy", "macro_f1")
    return {name: {k: v for k, v in figures.items() if k in wanted} for name, figures in results["models"].items()}


def test_the_containers_reach_the_same_accuracy_as_hubpipe_run(runs) -> None:
    local_stages = {record["name"]: record for record in json.loads((runs["local"] / "run.json").read_text())["stages"]}
    for stage in ("train", "evaluate"):
        in_containers = json.loads((tiny.folder_output(runs["kfp"], stage) / "manifest.json").read_text())["results"]
        scores = model_scores(in_containers)
        assert scores and all(scores.values()), (stage, in_containers)
        assert scores == model_scores(local_stages[stage]["results"]), stage


def test_a_stage_that_fails_inside_its_container_fails_the_run(
    image: str, docker_api: str, tmp_path: Path, remove_containers_of
) -> None:
    from kfp import local

    from hubpipe.pipeline.kubeflow.options import KubeflowOptions

    root = tmp_path / "failing"
    root.mkdir()
    root.chmod(0o777)
    config = tiny.tiny_config(root, root / "published")
    (root / "backbone" / "saved_model.pb").write_bytes(b"not a SavedModel")  # train cannot load it
    with docker_host(docker_api), umask(0), pytest.raises(RuntimeError, match="train"):
        tiny.run_through_kfp(local.DockerRunner(), root, config, KubeflowOptions(image=image))
    exit_codes = sorted(entry["ExitCode"] for entry in remove_containers_of())
    assert exit_codes[0] == 0 and exit_codes[-1] != 0  # ingest and validate passed, train failed in its container
