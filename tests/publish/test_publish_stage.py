"""Evaluate + publish on hand-built runs: logs always, models only when blessed, an atomic LATEST."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fake_run import FakeWorld
from fake_upstream import published_latest

from hubpipe.components.common import publish_root
from hubpipe.components.evaluate import executor as evaluate_executor
from hubpipe.components.publish import executor as publish_executor
from hubpipe.components.publish import run_names
from hubpipe.pipeline.core.config import load_config
from hubpipe.pipeline.core.runtime import import_tensorflow
from hubpipe.pipeline.core.stage import StageContext, StageResult


class Run:
    """One run's evaluate and publish stages into ``folder``, publishing to ``root``."""

    def __init__(self, world: FakeWorld, train: Path, folder: Path, root: Path, **settings: str):
        self.world, self.train, self.folder = world, train, folder
        overrides = {"publish.root": str(root), "train.vector_store": str(world.cache), **settings}
        self.config = load_config(overrides=overrides)

    def _context(self, name: str, inputs: dict[str, Path]) -> StageContext:
        out = self.folder / name
        out.mkdir(parents=True)
        return StageContext(name, self.config, inputs, out, self.world.cache, self.world.cache / "hubpipe", "test")

    def evaluate(self) -> StageResult:
        inputs = {"ingest": self.world.ingest, "train": self.train}
        return evaluate_executor.run(self._context("evaluate", inputs))

    def publish(self) -> StageResult:
        inputs = {"evaluate": self.folder / "evaluate", "train": self.train}
        return publish_executor.run(self._context("publish", inputs))

    def both(self) -> tuple[StageResult, StageResult]:
        return self.evaluate(), self.publish()

    @property
    def blessing(self) -> dict:
        return json.loads((self.folder / "evaluate" / "blessing.json").read_text())


def test_weak_candidate_is_not_published_but_its_logs_are(world: FakeWorld, tmp_path: Path) -> None:
    root = tmp_path / "published"
    evaluation, publication = Run(
        world, world.train_fair, tmp_path / "run", root, **{"evaluate.min_accuracy": 0.7}
    ).both()

    assert evaluation.results["blessed"] is None
    assert publication.results["published_version"] is None and publication.results["latest"] is None
    assert "not blessed" in publication.results["note"]
    assert not (root / "models").exists()
    logs = Path(publication.results["logs"])
    assert logs.parent == root / "tensorboard"
    assert list((logs / "fair" / "train").glob("events.out.tfevents.*"))
    assert list((logs / "fair" / "evaluation").glob("events.out.tfevents.*"))
    assert (logs / "fair" / "evaluation" / "projector_config.pbtxt").is_file()
    assert list((logs / "scratch_cnn" / "validation").glob("events.out.tfevents.*"))


def test_good_candidate_becomes_latest_and_a_second_run_compares_against_it(world: FakeWorld, tmp_path: Path) -> None:
    root = tmp_path / "published"
    first = Run(world, world.train_good_and_weak, tmp_path / "run1", root)
    _, publication = first.both()

    version = publication.results["published_version"]
    assert version == first.blessing["evaluation_id"]
    assert publication.results["latest"] == version
    assert (root / "models" / "LATEST").read_text() == version + "\n"
    folder = root / "models" / version
    for name in ("serving/saved_model.pb", "head/saved_model.pb", "labels.txt", "model.json", "blessing.json"):
        assert (folder / name).is_file(), name
    assert json.loads((folder / "metrics" / "good.json").read_text())["accuracy"] == pytest.approx(5 / 6)
    record = json.loads((folder / "version.json").read_text())
    assert (record["model"], record["reference"]) == ("good", None)
    assert record["model_key"] == first.blessing["blessed_model"]["model_key"]

    second = Run(world, world.train_better, tmp_path / "run2", root)
    evaluation, publication = second.both()
    assert evaluation.results["compared_with"] == version
    drop = next(c for c in second.blessing["checks"] if c["name"] == "max_drop_vs_blessed")
    assert drop["passed"] is True and drop["value"] == pytest.approx(0.0)
    new_version = publication.results["published_version"]
    assert new_version not in (None, version)
    assert publish_root.read_latest_id(str(root)) == new_version
    assert published_latest(str(root)).reference == version

    # "fair" is 4 test images below (5 it alone gets wrong, 1 it alone gets right): on 18 images only the point
    # rule refuses that (the interval rule does not, see tests/evaluate)
    third = Run(world, world.train_fair, tmp_path / "run3", root, **{"evaluate.rule": "point"})
    evaluation, publication = third.both()
    assert evaluation.results["compared_with"] == new_version
    assert evaluation.results["blessed"] is None
    assert publication.results["published_version"] is None
    assert publish_root.read_latest_id(str(root)) == new_version
    # three runs without a name: the default name, then the first free suffixes, each folder marking its evaluation
    runs = {p.name: json.loads((p / "hubpipe-run.json").read_text()) for p in (root / "tensorboard").iterdir()}
    wanted = run_names.default_name("", first.blessing["evaluation_id"])
    assert sorted(runs) == sorted([wanted, f"{wanted}-2", f"{wanted}-3"])
    assert sorted(marker["evaluation_id"] for marker in runs.values()) == sorted(
        r.blessing["evaluation_id"] for r in (first, second, third)
    )


def test_interrupted_publish_leaves_latest_unchanged(
    world: FakeWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "published"
    _, first = Run(world, world.train_good_and_weak, tmp_path / "run1", root).both()
    latest = first.results["latest"]

    second = Run(world, world.train_better, tmp_path / "run2", root)
    second.evaluate()
    gfile = import_tensorflow().io.gfile
    real_copy, copied = gfile.copy, []

    def copy_then_fail(source: str, target: str, overwrite: bool = False) -> None:
        if "/models/" in target:
            if len(copied) == 3:
                raise OSError("connection lost")
            copied.append(target)
        real_copy(source, target, overwrite=overwrite)

    monkeypatch.setattr(gfile, "copy", copy_then_fail)
    with pytest.raises(OSError, match="connection lost"):
        second.publish()

    assert publish_root.read_latest_id(str(root)) == latest
    assert sorted(p.name for p in (root / "models").iterdir()) == sorted(["LATEST", latest])
    assert (root / "models" / latest / "version.json").is_file()

    monkeypatch.setattr(gfile, "copy", real_copy)
    (tmp_path / "run2" / "publish").rmdir()
    retried = second.publish()
    assert publish_root.read_latest_id(str(root)) == retried.results["published_version"] != latest


def test_publishing_the_latest_model_again_adds_no_version(world: FakeWorld, tmp_path: Path) -> None:
    root = tmp_path / "published"
    _, first = Run(world, world.train_good_and_weak, tmp_path / "run1", root).both()
    rerun = Run(world, world.train_good_and_weak, tmp_path / "run2", root)
    evaluation, publication = rerun.both()

    assert evaluation.results["compared_with"] is None  # the blessed model is this very model: not its own reference
    assert evaluation.results["blessed"] == "good"
    assert publication.results["published_version"] is None
    assert "already the latest version" in publication.results["note"]
    assert [p.name for p in (root / "models").iterdir() if p.name != "LATEST"] == [first.results["latest"]]


def test_kubeflow_tensorboard_resource_points_at_the_pvc(world: FakeWorld, tmp_path: Path) -> None:
    settings = {
        "publish.pvc_name": "hubpipe-logs",
        "publish.pvc_path": "runs/tensorboard",
        "publish.namespace": "team-a",
    }
    run = Run(world, world.train_good_and_weak, tmp_path / "run", tmp_path / "published", **settings)
    _, publication = run.both()

    assert publication.artifacts["tensorboard_resource"] == "tensorboard.yaml"
    resource = yaml.safe_load((tmp_path / "run" / "publish" / "tensorboard.yaml").read_text())
    assert resource == {
        "apiVersion": "tensorboard.kubeflow.org/v1alpha1",
        "kind": "Tensorboard",
        "metadata": {"name": "hubpipe", "namespace": "team-a", "labels": {"app.kubernetes.io/part-of": "hubpipe"}},
        "spec": {"logspath": "pvc://hubpipe-logs/runs/tensorboard"},
    }
    record = json.loads((tmp_path / "run" / "publish" / "publish.json").read_text())
    assert any(hint.startswith("on Kubeflow: kubectl apply -f") for hint in record["hints"])


def test_local_root_without_pvc_writes_no_resource_and_says_why(world: FakeWorld, tmp_path: Path) -> None:
    _, publication = Run(world, world.train_good_and_weak, tmp_path / "run", tmp_path / "published").both()
    assert publication.results["tensorboard_resource"] is None
    record = json.loads((tmp_path / "run" / "publish" / "publish.json").read_text())
    assert "set publish.pvc_name or a gs:// root" in record["resource_note"]
    assert record["hints"][0] == f"locally: hubpipe tensorboard --logdir {tmp_path / 'published' / 'tensorboard'}"


def test_external_inputs_notice_a_deleted_publication(world: FakeWorld, tmp_path: Path) -> None:
    root = tmp_path / "published"
    run = Run(world, world.train_good_and_weak, tmp_path / "run", root)
    run.both()
    assert publish_executor.external_inputs(run.config, {}, tmp_path / "run" / "publish") == {
        "publish_root": str(root),
        "run_name": "",
        "missing": [],
    }
    version = publish_root.read_latest_id(str(root))
    (root / "models" / version / "version.json").unlink()
    assert publish_executor.external_inputs(run.config, {}, tmp_path / "run" / "publish")["missing"] == [
        f"version {version}"
    ]


def session_groups(logs: Path) -> dict[str, tuple[str, str]]:
    """Model -> (HParams session group name, ``run`` hyperparameter) of a published run's sessions."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import metadata

    found = {}
    for path in sorted(logs.glob("*/events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag == metadata.SESSION_START_INFO_TAG:
                    info = metadata.parse_session_start_info_plugin_data(value.metadata.plugin_data.content)
                    found[path.parent.name] = (info.group_name, info.hparams["run"].string_value)
    return found


def test_a_named_run_publishes_under_its_name_and_a_taken_name_gets_a_suffix(world: FakeWorld, tmp_path: Path) -> None:
    root = tmp_path / "published"
    named = {"run.name": "lite-sweep"}
    first = Run(world, world.train_good_and_weak, tmp_path / "run1", root, **named)
    _, publication = first.both()
    results = publication.results
    logs = root / "tensorboard" / "lite-sweep"
    assert (results["run_name"], results["logs"]) == ("lite-sweep", str(logs))
    assert results["evaluation_id"] == first.blessing["evaluation_id"] and results["root"] == str(root)
    version_dir = root / "models" / results["published_version"]
    assert results["version_dir"] == str(version_dir)
    assert json.loads((version_dir / "version.json").read_text())["run_name"] == "lite-sweep"
    models = {path.parent.name for path in logs.glob("*/train")}
    assert models == {"good", "weak", "scratch_cnn"}
    # the HParams rows read by run name, not by the evaluation id the evaluate stage wrote
    assert session_groups(logs) == {model: (f"lite-sweep/{model}", "lite-sweep") for model in models}
    assert session_groups(first.folder / "evaluate" / "tensorboard")["good"][1] == first.blessing["evaluation_id"]

    again = Run(world, world.train_good_and_weak, tmp_path / "again", root, **named)  # the same evaluation
    again.folder.mkdir()
    (again.folder / "evaluate").symlink_to(first.folder / "evaluate", target_is_directory=True)
    assert again.publish().results["run_name"] == "lite-sweep"

    other = Run(world, world.train_better, tmp_path / "run2", root, **named)  # another evaluation, the same name
    _, publication = other.both()
    assert publication.results["run_name"] == "lite-sweep-2"
    assert session_groups(root / "tensorboard" / "lite-sweep-2")["better"] == ("lite-sweep-2/better", "lite-sweep-2")
    assert sorted(p.name for p in (root / "tensorboard").iterdir()) == ["lite-sweep", "lite-sweep-2"]


def test_the_default_name_is_the_experiment_and_the_evaluation_date() -> None:
    assert run_names.default_name("food", "20261206T205950Z-87cf5927") == "food-2026-12-06"
    assert run_names.default_name("", "20261206T205950Z-87cf5927") == "hubpipe-2026-12-06"
