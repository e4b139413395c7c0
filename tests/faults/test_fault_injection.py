"""Fault injection: ``hubpipe run`` killed with SIGKILL at every crash point, or failing on an injected I/O error
(a full disk, an I/O error) at two of them, then rerun.

Each point gets its own run folder, publish root and source cache, prepared from one uninterrupted run so that
the faulty run starts right at the stage the point is in. A run that meets an I/O error exits 1 with one line.
After the rerun: it succeeds, its stage folders hold the same kinds of files as the uninterrupted run, LATEST
names the complete version this run blessed, no example is lost, and nothing temporary is left anywhere.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import harness
import pytest
from tiny_pipeline import tiny_config

from hubpipe.pipeline.core.config import PipelineConfig, replace, to_yaml
from hubpipe.pipeline.core.crashpoints import CRASH_POINTS, IO_ERRORS, Target
from hubpipe.pipeline.local_runner import run_pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SOURCES = Path(__file__).resolve().parents[2]
#: I/O errors injected at crash points (the benchmark injects both at every point): a full disk while the
#: ingest stage finishes, an I/O error between the two renames that put a stage folder in place.
IO_FAULTS = (Target("ingest.after_records", 1, "enospc"), Target("runner.between_renames", 1, "eio"))


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
        # one vector store for the uninterrupted run and every rerun (each has its own cache folder): a rerun
        # from evaluate on finds the test vectors the uninterrupted run's train stage stored
        train=replace(config.train, baseline=False, vector_store=str(root / "vectors")),
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


@pytest.fixture
def faulty(uninterrupted: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Prepares a run folder that restarts where a crash point is reached; returns a function that runs
    ``hubpipe run`` there with a fault and then checks that a plain rerun recovers."""
    root, template = uninterrupted
    run_dir, publish_root, cache = tmp_path / "run", tmp_path / "published", tmp_path / "cache"
    config = fault_config(root, publish_root)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(to_yaml(config))

    def run_with(fault: str | Target) -> tuple[int, str]:
        point = fault.point if isinstance(fault, Target) else fault
        harness.copy_run(template, run_dir, harness.RESTART_FROM.get(point))
        return harness.hubpipe_outcome(config_file, run_dir, harness.crash_env(fault, cache))

    def rerun_recovers() -> None:
        monkeypatch.setenv("HUBPIPE_CACHE_DIR", str(cache))
        report = run_pipeline(config, run_dir)
        assert report.status == "succeeded"
        assert harness.artifact_kinds(run_dir) == harness.artifact_kinds(template)
        assert harness.latest_problem(run_dir, publish_root) is None
        assert harness.examples_written(run_dir) == harness.examples_written(template)
        assert harness.leftovers(run_dir, publish_root, cache) == []

    return run_with, rerun_recovers


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_run_killed_at_a_crash_point_recovers_on_rerun(point: str, faulty) -> None:
    run_with, rerun_recovers = faulty
    status, _ = run_with(point)
    assert status == -9, f"{point} not reached"
    rerun_recovers()


@pytest.mark.parametrize("fault", IO_FAULTS, ids=lambda fault: fault.value())
def test_an_io_error_at_a_crash_point_fails_in_one_line_and_a_rerun_recovers(fault: Target, faulty) -> None:
    run_with, rerun_recovers = faulty
    status, stderr = run_with(fault)
    assert status == 1, stderr[-2000:]
    line = harness.one_line_error(stderr)
    assert line is not None, stderr[-2000:]
    assert os.strerror(IO_ERRORS[fault.action]) in line and f"injected at crash point {fault.point}" in line
    rerun_recovers()


def test_an_unknown_fault_action_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from hubpipe.pipeline.core import crashpoints
    from hubpipe.pipeline.core.crashpoints import ENV_VAR, crash_point

    monkeypatch.setattr(crashpoints, "_reached", {})
    monkeypatch.setenv(ENV_VAR, "runner.before_commit:1:eio")
    with pytest.raises(OSError) as raised:
        crash_point("runner.before_commit")
    assert raised.value.errno == errno.EIO
    monkeypatch.setenv(ENV_VAR, "runner.before_commit:1:melt")
    with pytest.raises(ValueError, match="unknown action 'melt'"):
        crash_point("runner.before_commit")
