"""Fault injection: ``hubpipe run`` killed with SIGKILL at every crash point, then rerun.

Each point gets its own run folder, publish root and source cache, prepared from one uninterrupted run so that
the killed run starts right at the stage the point is in. After the rerun: it succeeds, its stage folders hold
the same kinds of files as the uninterrupted run, LATEST names the complete version this run blessed, no
example is lost, and nothing temporary is left anywhere.
"""

from __future__ import annotations

import re
from pathlib import Path

import harness
import pytest
from tiny_pipeline import tiny_config

from hubpipe.pipeline.config import PipelineConfig, replace, to_yaml
from hubpipe.pipeline.crashpoints import CRASH_POINTS
from hubpipe.pipeline.runner import run_pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SOURCES = Path(__file__).resolve().parents[2]


def fault_config(root: Path, publish_root: Path) -> PipelineConfig:
    """The Kubeflow end-to-end test's tiny configuration, read from a zip (so extraction is exercised), with
    thresholds any model passes (so every run publishes) and no from-scratch baseline (time)."""
    config = tiny_config(root, publish_root)
    archive = root / "data.zip"
    if not archive.exists():
        harness.zip_images(root / "data", archive)
    return replace(
        config,
        data=replace(config.data, source=str(archive)),
        train=replace(config.train, baseline=False),
        evaluate=replace(config.evaluate, min_accuracy=0.0, max_drop_vs_blessed=1.0),
        publish=replace(config.publish, root=str(publish_root)),
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The shared inputs folder and one uninterrupted run folder."""
    root = tmp_path_factory.mktemp("faults")
    run_dir = root / "uninterrupted"
    report = run_pipeline(fault_config(root, root / "published-uninterrupted"), run_dir)
    assert report.status == "succeeded"
    return root, run_dir


def test_every_crash_point_is_in_the_code_once() -> None:
    calls: list[str] = []
    for path in [*SOURCES.glob("components/**/*.py"), *SOURCES.glob("pipeline/**/*.py"), *SOURCES.glob("data/*.py")]:
        calls += re.findall(r'crash_point\("([a-z_.]+)"\)', path.read_text())
    assert sorted(calls) == sorted(CRASH_POINTS)


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_run_killed_at_a_crash_point_recovers_on_rerun(
    point: str, uninterrupted: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, template = uninterrupted
    run_dir, publish_root, cache = tmp_path / "run", tmp_path / "published", tmp_path / "cache"
    harness.copy_run(template, run_dir, harness.RESTART_FROM.get(point))
    config = fault_config(root, publish_root)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(to_yaml(config))

    assert harness.hubpipe_run(config_file, run_dir, harness.crash_env(point, cache)) == -9, f"{point} not reached"

    monkeypatch.setenv("HUBPIPE_CACHE_DIR", str(cache))
    report = run_pipeline(config, run_dir)
    assert report.status == "succeeded"
    assert harness.artifact_kinds(run_dir) == harness.artifact_kinds(template)
    assert harness.latest_problem(run_dir, publish_root) is None
    assert harness.examples_written(run_dir) == harness.examples_written(template)
    assert harness.leftovers(run_dir, publish_root, cache) == []
