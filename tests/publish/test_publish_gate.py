"""The gate fails closed: a publish root whose LATEST names a blessed model that cannot be read stops the run
(one line, exit code 5) instead of counting as "nothing blessed yet", and LATEST stays where it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import fake_upstream
import pytest
from fake_run import FakeWorld

from hubpipe.components.common import publish_root
from hubpipe.pipeline import stages as stage_registry
from hubpipe.pipeline.cli import main
from hubpipe.pipeline.core.errors import PublishRootDamaged

#: Thresholds that bless any candidate unless it is worse than the blessed model.
ONLY_THE_DROP_CHECK = [
    "--set=evaluate.min_accuracy=0",
    "--set=evaluate.min_margin_over_baseline=-1",
    "--set=evaluate.max_drop_vs_blessed=0",
]


def damage_latest_version(root: Path, damage: str) -> None:
    folder = root / "models" / publish_root.read_latest_id(str(root))
    if damage == "malformed_version_json":
        (folder / "version.json").write_text('{"model": "good", "model_k')
    elif damage == "no_version_json":
        (folder / "version.json").unlink()
    elif damage == "no_version_folder":
        shutil.rmtree(folder)
    elif damage == "no_stored_predictions":  # needed: this run's cache has no vectors its head could take
        (folder / "test_predictions.npz").unlink()
    elif damage == "no_labels":
        (folder / "labels.txt").unlink()
    elif damage == "empty_latest":
        (root / "models" / "LATEST").write_text("\n")


def hubpipe_run(world: FakeWorld, output: Path, root: Path, monkeypatch: pytest.MonkeyPatch, train: Path) -> int:
    """``hubpipe run`` with the fake ingest and train stages (copies of the world) and the real evaluate and
    publish stages."""
    monkeypatch.setenv("FAKE_INGEST", str(world.ingest))
    monkeypatch.setenv("FAKE_CACHE", str(output.parent / "empty-cache"))  # no vectors: stored predictions needed
    monkeypatch.setenv("FAKE_TRAIN", str(train))
    (output.parent / "empty-cache").mkdir(exist_ok=True)
    stages = fake_upstream.stages()
    monkeypatch.setattr(stage_registry, "registered_stages", lambda: stages)
    store = f"--set=train.vector_store={output.parent / 'empty-cache'}"
    return main(["run", "--output", str(output), f"--set=publish.root={root}", store, *ONLY_THE_DROP_CHECK])


@pytest.mark.parametrize(
    "damage",
    [
        "malformed_version_json",
        "no_version_json",
        "no_version_folder",
        "no_stored_predictions",
        "no_labels",
        "empty_latest",
    ],
)
def test_a_worse_candidate_is_not_blessed_when_latest_cannot_be_read(
    world: FakeWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, damage: str
) -> None:
    root = tmp_path / "published"
    assert hubpipe_run(world, tmp_path / "first", root, monkeypatch, world.train_good_and_weak) == 0
    blessed = publish_root.read_latest_id(str(root))
    assert json.loads((root / "models" / blessed / "version.json").read_text())["model"] == "good"  # 5/6
    damage_latest_version(root, damage)
    latest_before = (root / "models" / "LATEST").read_text()
    capsys.readouterr()

    code = hubpipe_run(world, tmp_path / "second", root, monkeypatch, world.train_fair)  # "fair": 11/18

    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == PublishRootDamaged.exit_code == 5
    assert len(errors) == 1 and str(root) in errors[0], errors
    assert "Traceback" not in errors[0] and "nothing blessed" not in errors[0]
    if damage != "empty_latest":
        assert f"the blessed version {blessed}" in errors[0] and "write the id of a complete version" in errors[0]
    assert (root / "models" / "LATEST").read_text() == latest_before
    report = json.loads((tmp_path / "second" / "run.json").read_text())
    statuses = {stage["name"]: stage["status"] for stage in report["stages"]}
    assert report["status"] == "failed" and statuses["evaluate"] == "failed" and statuses["publish"] == "pending"
    assert not (tmp_path / "second" / "evaluate").exists()


def test_an_absent_latest_is_nothing_blessed_yet(
    world: FakeWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "published"
    (root / "models").mkdir(parents=True)  # a root with no LATEST: nothing was blessed
    assert hubpipe_run(world, tmp_path / "run", root, monkeypatch, world.train_fair) == 0
    blessing = json.loads((tmp_path / "run" / "evaluate" / "blessing.json").read_text())
    assert blessing["blessed"] == "fair"
    assert blessing["reference"]["skip_reason"] == "no blessed model in the publish root yet"
    assert publish_root.read_latest_id(str(root)) == blessing["evaluation_id"]
