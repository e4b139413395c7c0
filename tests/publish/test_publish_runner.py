"""Evaluate and publish under the local runner: reruns are cached, a new blessed model elsewhere is noticed."""

from __future__ import annotations

from pathlib import Path

import fake_upstream
import pytest
from fake_run import FakeWorld

from hubpipe.components.common import publish_root
from hubpipe.pipeline.core.config import load_config
from hubpipe.pipeline.local_runner import run_pipeline


@pytest.fixture
def upstream(world: FakeWorld, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("FAKE_INGEST", str(world.ingest))
    monkeypatch.setenv("FAKE_TRAIN", str(world.train_good_and_weak))
    monkeypatch.setenv("FAKE_CACHE", str(world.cache))
    return monkeypatch


def statuses(report) -> dict[str, str]:
    return {record.name: record.status for record in report.stages}


def test_rerun_is_cached_after_publishing_and_new_training_compares_with_it(
    world: FakeWorld, tmp_path: Path, upstream: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "published"
    config = load_config(overrides={"publish.root": str(root)})
    first = run_pipeline(config, tmp_path / "a", fake_upstream.stages())
    assert set(statuses(first).values()) == {"ran"}
    v1 = first.stage("publish").results["published_version"]
    assert v1 and publish_root.read_latest_id(str(root)) == v1

    again = run_pipeline(config, tmp_path / "a", fake_upstream.stages())
    assert set(statuses(again).values()) == {"cached"}, "publishing the model must not invalidate its own evaluation"

    upstream.setenv("FAKE_TRAIN", str(world.train_better))
    retrained = run_pipeline(config, tmp_path / "a", fake_upstream.stages())
    assert statuses(retrained) == {"ingest": "cached", "train": "ran", "evaluate": "ran", "publish": "ran"}
    assert retrained.stage("evaluate").results["compared_with"] == v1
    v2 = retrained.stage("publish").results["published_version"]
    assert publish_root.read_latest_id(str(root)) == v2 != v1
    assert set(statuses(run_pipeline(config, tmp_path / "a", fake_upstream.stages())).values()) == {"cached"}

    upstream.setenv("FAKE_TRAIN", str(world.train_good_and_weak))
    elsewhere = run_pipeline(config, tmp_path / "b", fake_upstream.stages())
    assert elsewhere.stage("evaluate").results["compared_with"] == v2
    v3 = elsewhere.stage("publish").results["published_version"]
    assert publish_root.read_latest_id(str(root)) == v3 not in (v1, v2)

    upstream.setenv("FAKE_TRAIN", str(world.train_better))
    noticed = run_pipeline(config, tmp_path / "a", fake_upstream.stages())
    assert statuses(noticed) == {"ingest": "cached", "train": "cached", "evaluate": "ran", "publish": "ran"}
    assert noticed.stage("evaluate").results["compared_with"] == v3


def test_default_publish_root_is_in_the_hubpipe_cache(
    world: FakeWorld, tmp_path: Path, upstream: pytest.MonkeyPatch
) -> None:
    upstream.setenv("HUBPIPE_CACHE_DIR", str(tmp_path / "cache-home"))
    report = run_pipeline(load_config(), tmp_path / "run", fake_upstream.stages())
    version = report.stage("publish").results["published_version"]
    root = tmp_path / "cache-home" / "published" / "run"  # the experiment: the run folder's name
    assert (root / "models" / version / "version.json").is_file()
    assert report.stage("publish").results["logs"].startswith(str(root / "tensorboard"))


def test_unrelated_runs_do_not_gate_each_other_by_default_and_share_a_root_one_setting_away(
    world: FakeWorld, tmp_path: Path, upstream: pytest.MonkeyPatch
) -> None:
    """The default publish root is the experiment's (the run folder's name): a run does not compare with an
    unrelated run blessed earlier on the same machine; the same publish.experiment (or publish.root) shares one."""
    cache = tmp_path / "hubpipe-cache"
    upstream.setenv("HUBPIPE_CACHE_DIR", str(cache))
    trial = run_pipeline(load_config(), tmp_path / "trial", fake_upstream.stages())
    upstream.setenv("FAKE_TRAIN", str(world.train_better))  # another model: it would be compared with the trial's
    notebook = run_pipeline(load_config(), tmp_path / "notebook run", fake_upstream.stages())
    assert trial.stage("publish").results["published_version"]
    assert notebook.stage("evaluate").results["compared_with"] is None  # not the trial's model
    assert publish_root.read_latest_id(str(cache / "published" / "trial"))
    assert publish_root.read_latest_id(str(cache / "published" / "notebook-run"))
    assert notebook.publish_root.startswith(f"publish root {cache / 'published' / 'notebook-run'} (experiment ")

    shared = load_config(overrides={"publish.experiment": "pets"})
    first = run_pipeline(shared, tmp_path / "first", fake_upstream.stages())
    upstream.setenv("FAKE_TRAIN", str(world.train_good_and_weak))
    second = run_pipeline(shared, tmp_path / "second", fake_upstream.stages())
    assert second.stage("evaluate").results["compared_with"] == first.stage("publish").results["published_version"]
    assert (tmp_path / "first" / "resolved_config.yaml").read_text().count("experiment: pets") == 1
    upstream.setenv("FAKE_TRAIN", str(world.train_better))
    named = run_pipeline(load_config(), tmp_path / "third", fake_upstream.stages())
    assert "experiment: third" in (tmp_path / "third" / "resolved_config.yaml").read_text()
    assert named.stage("evaluate").results["compared_with"] is None
