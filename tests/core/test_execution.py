"""The execution core both runners share: a stage run locally and in a Kubeflow task writes the same manifest."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import fake_stages
import pytest

from hubpipe.pipeline.core import execution
from hubpipe.pipeline.core.artifacts import replace_dir, staging_dir
from hubpipe.pipeline.core.config import load_config
from hubpipe.pipeline.core.errors import StageError, UsageError
from hubpipe.pipeline.core.execution import MANIFEST, Placement, execute, fingerprint_inputs, output_identity
from hubpipe.pipeline.core.stage import StageSpec
from hubpipe.pipeline.kubeflow.launcher import keep_as_previous, run_stage
from hubpipe.pipeline.local_runner import run_pipeline

#: What differs between two executions of the same stage by nature: when they ran.
TIMING = {"started", "duration_s"}


@pytest.fixture(autouse=True)
def _fake_environment(counts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_EXTERNAL", "source-v1")


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def test_local_runner_and_kubeflow_launcher_write_the_same_manifests(tmp_path: Path) -> None:
    config = load_config()
    ingest, validate, _ = fake_stages.CHAIN
    run_pipeline(config, tmp_path / "local", (ingest, validate))
    run_stage(ingest, config, {}, tmp_path / "kfp" / "ingest")
    run_stage(validate, config, {"ingest": tmp_path / "kfp" / "ingest"}, tmp_path / "kfp" / "validate")
    for stage in ("ingest", "validate"):
        local, kfp = manifest_of(tmp_path / "local" / stage), manifest_of(tmp_path / "kfp" / stage)
        expected = {*TIMING, "stage", "fingerprint", "inputs", "artifacts", "results", "rejected", "files"}
        assert set(local) == set(kfp) == expected
        for field in set(local) - TIMING:
            if field != "results":  # results count the stage's runs, which differ by design of the fake
                assert local[field] == kfp[field], f"{stage}: {field} differs"
        assert local["results"]["value"] == kfp["results"]["value"]
    assert manifest_of(tmp_path / "kfp" / "ingest")["inputs"]["external"] == {"marker": "source-v1"}


def test_the_fingerprint_names_parameters_code_external_inputs_and_upstream(tmp_path: Path) -> None:
    config = load_config()
    ingest, validate, _ = fake_stages.CHAIN
    run_stage(ingest, config, {}, tmp_path / "ingest")
    placement = Placement(
        inputs={"ingest": tmp_path / "ingest"}, work_dir=tmp_path / "work", cache_dir=tmp_path, cache_root=tmp_path
    )
    inputs = fingerprint_inputs(validate, config, placement)
    assert set(inputs) == {"stage", "parameters", "code", "external", "upstream"}
    assert inputs["upstream"] == {"ingest": output_identity(manifest_of(tmp_path / "ingest"))}
    assert set(inputs["parameters"]) == {"validate"}
    assert inputs["external"] == {}  # validate reads nothing besides its upstream folder


def not_a_result(ctx) -> object:
    return {"results": {}}


def test_an_executor_that_returns_no_stage_result_is_a_stage_error(tmp_path: Path) -> None:
    spec = StageSpec("odd", f"{__name__}:not_a_result")
    placement = Placement(inputs={}, work_dir=tmp_path, cache_dir=tmp_path, cache_root=tmp_path)
    with pytest.raises(StageError, match="returned dict, not a StageResult"):
        execute(spec, load_config(), placement, fingerprint_inputs(spec, load_config(), placement))
    assert not (tmp_path / MANIFEST).exists()


def test_replace_dir_swaps_a_folder_in_with_renames_and_leaves_nothing_aside(tmp_path: Path) -> None:
    target = tmp_path / "run" / "stage"
    target.parent.mkdir()
    for content in ("first", "second"):
        staging = staging_dir(target)
        staging.mkdir()
        (staging / "value.txt").write_text(content)
        replace_dir(staging, target)
        assert (target / "value.txt").read_text() == content
    assert sorted(p.name for p in target.parent.iterdir()) == ["stage"]


def test_replace_dir_puts_the_old_folder_back_when_the_second_rename_fails(tmp_path: Path) -> None:
    target = tmp_path / "run" / "stage"
    target.mkdir(parents=True)
    (target / "value.txt").write_text("old")
    staging = staging_dir(target)
    staging.mkdir()

    def io_error() -> None:
        raise OSError(errno.EIO, "injected")

    with pytest.raises(OSError, match="injected"):
        replace_dir(staging, target, between=io_error)
    assert (target / "value.txt").read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == [staging.name, "stage"]  # the caller removes staging


def test_commit_passes_the_crash_points_of_both_runners(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reached: list[str] = []
    monkeypatch.setattr(execution, "crash_point", reached.append)
    target = tmp_path / "stage"
    for _ in range(2):
        staging_dir(target).mkdir()
        execution.commit(staging_dir(target), target)
    assert reached == ["runner.before_commit", "runner.before_commit", "runner.between_renames"]


def test_a_kubeflow_task_keeps_its_folder_under_the_lock_and_sweeps_what_killed_tasks_left(tmp_path: Path) -> None:
    done = tmp_path / "task"
    done.mkdir()
    (done / MANIFEST).write_text("{}")
    location = tmp_path / "previous" / "ingest"
    killed = tmp_path / "previous" / ".tmp-ingest-999999"
    killed.mkdir(parents=True)
    keep_as_previous(done, location)
    assert (location / MANIFEST).is_file() and not killed.exists()
    assert sorted(p.name for p in location.parent.iterdir()) == [".hubpipe-run", ".lock", "ingest"]


def test_a_second_run_into_a_claimed_folder_stops_with_one_line(tmp_path: Path) -> None:
    with execution.claim_folder(tmp_path / "run", ["ingest"]):
        second = execution.claim_folder(tmp_path / "run", ["ingest"])
        with pytest.raises(UsageError, match="another run"):
            second.__enter__()


def test_both_runners_give_the_executor_the_cache_folder_and_the_code_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An executor reads no environment: hubpipe's cache folder and the stage's code version come in its context."""
    monkeypatch.setenv("HUBPIPE_CACHE_DIR", str(tmp_path / "hubpipe-cache"))
    spec = StageSpec("ingest", f"{fake_stages.MODULE}:report_context", code=fake_stages.CODE)
    local = run_pipeline(load_config(), tmp_path / "local", (spec,)).stage("ingest").results
    _, manifest = run_stage(spec, load_config(), {}, tmp_path / "kfp" / "ingest")
    for results in (local, manifest["results"]):
        assert results["cache_root"] == str(tmp_path / "hubpipe-cache")
        assert results["code_version"] == manifest["inputs"]["code"] == execution.code_version(fake_stages.CODE)
