"""The local runner: fingerprint cache, invalidation, atomic stage folders, run.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import fake_stages
import pytest

from hubpipe.pipeline.core.config import apply_overrides, load_config
from hubpipe.pipeline.core.errors import DataRejected, HubpipeError, UsageError
from hubpipe.pipeline.core.stage import StageSpec
from hubpipe.pipeline.local_runner import LocalRunner, run_pipeline


def runs_of(counts: Path, stage: str) -> int:
    path = counts / stage
    return int(path.read_text()) if path.exists() else 0


def statuses(report) -> dict[str, str]:
    return {record.name: record.status for record in report.stages}


def test_second_run_is_cached_and_parameter_change_reruns_downstream(tmp_path: Path, counts: Path) -> None:
    config = load_config()
    out = tmp_path / "run"
    first = run_pipeline(config, out, fake_stages.CHAIN)
    assert statuses(first) == {"ingest": "ran", "validate": "ran", "train": "ran"}
    assert (out / "train" / "value.txt").read_text() == "ingest=5;validate=5;train=5;"

    second = run_pipeline(config, out, fake_stages.CHAIN)
    assert statuses(second) == {"ingest": "cached", "validate": "cached", "train": "cached"}
    assert [runs_of(counts, s) for s in ("ingest", "validate", "train")] == [1, 1, 1]
    assert second.stage("train").results["value"] == "ingest=5;validate=5;train=5;"

    # validate's own section changes: validate and train rerun, ingest stays cached.
    changed = apply_overrides(config, {"validate.policy": "warn"})
    third = run_pipeline(changed, out, fake_stages.CHAIN)
    assert statuses(third) == {"ingest": "cached", "validate": "ran", "train": "ran"}
    assert [runs_of(counts, s) for s in ("ingest", "validate", "train")] == [1, 2, 2]


def test_external_input_change_reruns_from_the_stage_that_reads_it(
    tmp_path: Path, counts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    run_pipeline(load_config(), out, fake_stages.CHAIN)
    monkeypatch.setenv("FAKE_EXTERNAL", "new data")
    report = run_pipeline(load_config(), out, fake_stages.CHAIN)
    assert statuses(report) == {"ingest": "ran", "validate": "ran", "train": "ran"}


def test_cache_can_be_disabled(tmp_path: Path, counts: Path) -> None:
    config = load_config(overrides={"runner.cache": False})
    run_pipeline(config, tmp_path / "run", fake_stages.CHAIN)
    report = run_pipeline(config, tmp_path / "run", fake_stages.CHAIN)
    assert set(statuses(report).values()) == {"ran"}


def test_until_runs_only_the_needed_stages(tmp_path: Path, counts: Path) -> None:
    report = run_pipeline(load_config(), tmp_path / "run", fake_stages.CHAIN, until="validate")
    assert statuses(report) == {"ingest": "ran", "validate": "ran"}
    assert not (tmp_path / "run" / "train").exists()
    with pytest.raises(UsageError, match="unknown stage 'publish'"):
        run_pipeline(load_config(), tmp_path / "run", fake_stages.CHAIN, until="publish")


def test_run_json_records_every_stage(tmp_path: Path, counts: Path) -> None:
    out = tmp_path / "run"
    run_pipeline(load_config(), out, fake_stages.CHAIN)
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "succeeded"
    assert [stage["name"] for stage in run["stages"]] == ["ingest", "validate", "train"]
    train = run["stages"][2]
    assert train["status"] == "ran"
    assert train["artifacts"] == {"value": "train/value.txt"}
    assert train["results"]["value"].endswith("train=5;")
    assert len(train["fingerprint"]) == 64 and train["duration_s"] >= 0
    manifest = json.loads((out / "train" / "manifest.json").read_text())
    assert manifest["fingerprint"] == train["fingerprint"]
    assert set(manifest["inputs"]) == {"stage", "parameters", "code", "external", "upstream"}
    assert manifest["inputs"]["parameters"]["train"]["epochs"] == 5
    assert (out / "resolved_config.yaml").read_text().startswith("data:")


def test_failed_stage_is_recorded_and_leaves_no_folder(tmp_path: Path, counts: Path) -> None:
    stages = (*fake_stages.CHAIN[:2], StageSpec("train", "fake_stages:fail", upstream=("validate",)))
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="boom"):
        run_pipeline(load_config(), out, stages)
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed"
    assert run["stages"][2]["status"] == "failed" and run["stages"][2]["error"] == "boom"
    assert not (out / "train").exists()
    assert not list(out.glob(".tmp-*"))


def test_rejected_stage_keeps_its_artifacts_and_stays_rejected_when_cached(tmp_path: Path, counts: Path) -> None:
    stages = (fake_stages.CHAIN[0], StageSpec("validate", "fake_stages:reject", upstream=("ingest",)))
    out = tmp_path / "run"
    for expected in ("failed", "cached"):
        with pytest.raises(DataRejected, match="class 'x' missing"):
            run_pipeline(load_config(), out, stages)
        run = json.loads((out / "run.json").read_text())
        assert run["stages"][1]["status"] == expected
    assert (out / "validate" / "anomalies.txt").exists()
    assert runs_of(counts, "validate") == 1


def test_stage_killed_midway_is_rerun(tmp_path: Path, counts: Path) -> None:
    """A SIGKILL inside a stage leaves only a temp folder; the next run reruns that stage and completes."""
    out = tmp_path / "run"
    run_pipeline(load_config(), out, fake_stages.CHAIN)
    changed = {"train.epochs": 7}
    script = (
        "import fake_stages\n"
        "from hubpipe.pipeline.core.config import load_config\n"
        "from hubpipe.pipeline.local_runner import run_pipeline\n"
        f"run_pipeline(load_config(overrides={changed!r}), {str(out)!r}, fake_stages.CHAIN)\n"
    )
    env = dict(os.environ, FAKE_STAGE_KILL="train", PYTHONPATH=str(Path(fake_stages.__file__).parent))
    killed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, check=False)
    assert killed.returncode == -9
    assert list(out.glob(".tmp-train-*")), "the killed stage's temp folder should be left behind"
    # The old, complete train folder is still the previous parameters' output, not a half-written new one.
    assert (out / "train" / "value.txt").read_text().endswith("train=5;")

    report = run_pipeline(load_config(overrides=changed), out, fake_stages.CHAIN)
    assert statuses(report)["train"] == "ran"
    assert (out / "train" / "value.txt").read_text().endswith("train=7;")
    assert not list(out.glob(".tmp-*"))


def test_dag_errors_are_clear() -> None:
    cyclic = (StageSpec("a", "x:y", upstream=("b",)), StageSpec("b", "x:y", upstream=("a",)))
    with pytest.raises(HubpipeError, match="cycle"):
        LocalRunner(load_config(), Path("unused"), cyclic)
    with pytest.raises(HubpipeError, match="unknown stage nope"):
        LocalRunner(load_config(), Path("unused"), (StageSpec("a", "x:y", upstream=("nope",)),))


def test_stages_run_in_dependency_order(tmp_path: Path, counts: Path) -> None:
    shuffled = tuple(reversed(fake_stages.CHAIN))
    report = run_pipeline(load_config(), tmp_path / "run", shuffled)
    assert [record.name for record in report.stages] == ["ingest", "validate", "train"]


def test_atomic_writes_get_ordinary_permissions(tmp_path: Path) -> None:
    """Artifacts must be readable by other users of a shared volume (e.g. a TensorBoard pod), like open() files."""
    from hubpipe.pipeline.core.artifacts import write_json_atomic

    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "a.json", {"x": 1})
        (tmp_path / "b.txt").write_text("reference")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o644
    assert not list(tmp_path.glob(".a.json.*"))


def test_preflight_checks_run_before_any_stage_and_only_for_selected_stages(tmp_path: Path, counts: Path) -> None:
    checked = [
        *fake_stages.CHAIN[:2],
        StageSpec(
            "train",
            f"{fake_stages.MODULE}:write_value",
            upstream=("validate",),
            sections=("train",),
            code=fake_stages.CODE,
            preflight=f"{fake_stages.MODULE}:refuse_unless_allowed",
        ),
    ]
    config = apply_overrides(load_config(), {"train.backbones": ["forbidden"]})
    with pytest.raises(UsageError, match="backbone forbidden is refused"):
        run_pipeline(config, tmp_path / "run", checked)
    assert runs_of(counts, "ingest") == 0 and not (tmp_path / "run").exists()
    report = run_pipeline(config, tmp_path / "run", checked, until="validate")  # train is not selected
    assert statuses(report) == {"ingest": "ran", "validate": "ran"}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--backbone", "nosuchmodel"], "unknown backbone 'nosuchmodel'"),
        (["--backbone", "./no/such/dir"], "no SavedModel at"),
        (
            ["--set", "publish.root=s3://bucket/published"],
            "publish.root 's3://bucket/published': s3:// is not supported",
        ),
        (["--data", "ftp://host/data.zip"], "data.source 'ftp://host/data.zip': ftp:// is not supported"),
        (["--data", "/no/such/folder"], "data source /no/such/folder does not exist"),
    ],
)
def test_run_refuses_a_bad_configuration_before_any_stage(tmp_path: Path, flags: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hubpipe.pipeline.cli", "run", "--output", str(tmp_path / "run"), *flags],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "HUBPIPE_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {result.stderr.strip()[7:]}"]
    assert message in result.stderr
    assert not (tmp_path / "run" / "ingest").exists() and not (tmp_path / "cache").exists()
