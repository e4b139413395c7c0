"""The local runner: runs the stage DAG in one process, with a fingerprint cache and atomic artifacts.

Layout of a run folder ``DIR``::

    DIR/resolved_config.yaml   the configuration of the last run
    DIR/run.json               every stage's status, duration, artifacts and key results
    DIR/<stage>/               a stage's artifacts, with manifest.json written last
    DIR/cache/                 caches shared by the runs of this folder (embeddings)

A run holds an OS lock on ``DIR/.lock`` from start to end (see :mod:`hubpipe.pipeline.locking`): a second
run into the same folder stops with "another run (pid N) is using DIR", while the lock of a killed run is
gone with its process. Holding the lock, a run removes what killed runs left (``.tmp-*``, ``.old-*``, and
temporary files in ``DIR/cache``). run.json records the run's pid, host and start time.

A stage runs in ``DIR/.tmp-<stage>-<pid>`` and is renamed to ``DIR/<stage>`` only once its executor has
returned and its manifest is written, so a stage that is killed midway leaves no folder a rerun would take
for complete. A stage is skipped (``cached``) when ``DIR/<stage>/manifest.json`` holds the fingerprint the
stage would have now: a hash of its parameters, its code version, its external inputs and the
fingerprints of its upstream stages (so a change reruns the stage and everything downstream).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import os
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubpipe.pipeline import __version__
from hubpipe.pipeline.artifacts import hash_files, read_json, stable_hash, write_json_atomic, write_text_atomic
from hubpipe.pipeline.config import PipelineConfig, section_dict, to_yaml
from hubpipe.pipeline.crashpoints import crash_point
from hubpipe.pipeline.errors import DataRejected, HubpipeError, UsageError
from hubpipe.pipeline.locking import RunLock, process_identity, remove_path
from hubpipe.pipeline.stage import StageContext, StageResult, StageSpec

LOG = logging.getLogger("hubpipe.runner")

MANIFEST = "manifest.json"
RUN_FILE = "run.json"
CONFIG_FILE = "resolved_config.yaml"
#: Temporary names under ``DIR/cache`` (embeddings, checkpoint histories) that only a killed run leaves.
LEFTOVER_IN_CACHE = re.compile(r"^\..+\.tmp(-\d+|\.npz)?$")


@dataclass
class StageRecord:
    """One stage's entry in run.json."""

    name: str
    status: str = "pending"  # ran, cached, failed, skipped
    fingerprint: str = ""
    duration_s: float = 0.0
    artifacts: dict[str, str] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass
class RunReport:
    """The outcome of :func:`run_pipeline`, also written as run.json."""

    output_dir: Path
    stages: list[StageRecord]
    status: str = "running"
    process: dict[str, Any] = field(default_factory=process_identity)
    tracking: dict[str, Any] | None = None  # what MLflow tracking did (see hubpipe.pipeline.tracking)

    def stage(self, name: str) -> StageRecord:
        return next(record for record in self.stages if record.name == name)


def code_version(packages: Iterable[str]) -> str:
    """Hash of the Python sources of ``packages`` plus the hubpipe version, without importing them."""
    files: list[tuple[Path, Path]] = []
    for package in sorted(packages):
        spec = importlib.util.find_spec(package)
        if spec is None:
            raise HubpipeError(f"code package {package} not found")
        roots = list(spec.submodule_search_locations or [])
        if not roots and spec.origin:
            files.append((Path(spec.origin).parent, Path(spec.origin)))
        for root in roots:
            files.extend((Path(root), p) for p in Path(root).rglob("*.py"))
    digests = {f"{root.name}/{path.relative_to(root)}": hash_files([path], path.parent) for root, path in files}
    return stable_hash({"version": __version__, "files": digests})


def topological_order(stages: Sequence[StageSpec]) -> list[StageSpec]:
    """The stages in an order where each comes after its upstream stages; rejects cycles and unknown names."""
    by_name = {stage.name: stage for stage in stages}
    ordered: list[StageSpec] = []
    state: dict[str, str] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name not in by_name:
            raise HubpipeError(f"stage {chain[-1]} depends on unknown stage {name}")
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise HubpipeError(f"stage dependency cycle: {' -> '.join((*chain, name))}")
        state[name] = "visiting"
        for upstream in by_name[name].upstream:
            visit(upstream, (*chain, name))
        state[name] = "done"
        ordered.append(by_name[name])

    for stage in stages:
        visit(stage.name, ())
    return ordered


def select_until(stages: list[StageSpec], until: str | None) -> list[StageSpec]:
    """The stages needed to finish ``until`` (itself included), in order; all when ``until`` is None."""
    if until is None:
        return stages
    names = [stage.name for stage in stages]
    if until not in names:
        raise UsageError(f"unknown stage {until!r} for --until (stages: {', '.join(names)})")
    needed = {until}
    for stage in reversed(stages):
        if stage.name in needed:
            needed.update(stage.upstream)
    return [stage for stage in stages if stage.name in needed]


def preflight(stages: Sequence[StageSpec], config: PipelineConfig) -> None:
    """Runs each stage's configuration checks (each check once) before any stage starts."""
    checked: set[str] = set()
    for stage in stages:
        check = stage.load_preflight()
        if check is not None and stage.preflight not in checked:
            checked.add(stage.preflight)
            check(config)


class LocalRunner:
    """Runs stages in order in this process; see the module docstring for the folder layout."""

    def __init__(self, config: PipelineConfig, output_dir: Path, stages: Sequence[StageSpec]):
        self.config = config
        self.output_dir = Path(output_dir).resolve()
        self.stages = topological_order(stages)
        self.fingerprints: dict[str, str] = {}

    def run(self, until: str | None = None, use_cache: bool = True) -> RunReport:
        preflight(select_until(self.stages, until), self.config)  # before the output folder is even created
        with RunLock(self.output_dir):
            return self._run_locked(until, use_cache)

    def _run_locked(self, until: str | None, use_cache: bool) -> RunReport:
        selected = select_until(self.stages, until)
        self._prepare()
        report = RunReport(self.output_dir, [StageRecord(stage.name) for stage in selected])
        self._write_report(report)
        try:
            for stage in selected:
                self._run_stage(stage, report.stage(stage.name), use_cache)
                self._write_report(report)
        except BaseException as exc:
            report.status = "failed"
            self._write_report(report)
            if isinstance(exc, Exception):
                self.track(report)
            raise
        report.status = "succeeded"
        self._write_report(report)
        self.track(report)
        return report

    def _prepare(self) -> None:
        """Removes what killed runs left; safe because this run holds the folder's lock."""
        leftovers = [*self.output_dir.glob(".tmp-*"), *self.output_dir.glob(".old-*")]
        leftovers += [path for path in (self.output_dir / "cache").rglob("*") if LEFTOVER_IN_CACHE.match(path.name)]
        for leftover in leftovers:
            LOG.info("removing %s, left by a run that was killed", leftover.name)
            remove_path(leftover)
        write_text_atomic(self.output_dir / CONFIG_FILE, to_yaml(self.config))

    def fingerprint(self, stage: StageSpec) -> dict[str, Any]:
        """The data that identifies a stage's output; its hash is the stage fingerprint."""
        external_fn = stage.load_external_inputs()
        return {
            "stage": stage.name,
            "parameters": section_dict(self.config, *stage.sections),
            "code": code_version(stage.code),
            "external": dict(external_fn(self.config, self.output_dir)) if external_fn else {},
            "upstream": {name: self.fingerprints[name] for name in stage.upstream},
        }

    def _run_stage(self, stage: StageSpec, record: StageRecord, use_cache: bool) -> None:
        inputs = self.fingerprint(stage)
        record.fingerprint = self.fingerprints[stage.name] = stable_hash(inputs)
        final_dir = self.output_dir / stage.name
        manifest = self._complete_manifest(final_dir)
        if use_cache and manifest and manifest.get("fingerprint") == record.fingerprint:
            self._fill_record(record, "cached", manifest, final_dir)
            LOG.info("[%s] cached (fingerprint %s)", stage.name, record.fingerprint[:12])
            if manifest.get("rejected"):
                raise DataRejected(manifest["rejected"])
            return
        LOG.info("[%s] running", stage.name)
        started = time.monotonic()
        try:
            result = self._execute(stage, inputs, record.fingerprint, started)
        except BaseException as exc:
            record.status, record.duration_s = "failed", round(time.monotonic() - started, 3)
            record.error = str(exc) or type(exc).__name__
            raise
        manifest = read_json(final_dir / MANIFEST)
        self._fill_record(record, "ran", manifest, final_dir)
        LOG.info("[%s] done in %.1f s", stage.name, record.duration_s)
        if result.rejected:
            record.status, record.error = "failed", result.rejected
            raise DataRejected(result.rejected)

    def _execute(self, stage: StageSpec, inputs: dict[str, Any], fingerprint: str, started: float) -> StageResult:
        tmp_dir = self.output_dir / f".tmp-{stage.name}-{os.getpid()}"
        shutil.rmtree(tmp_dir, ignore_errors=True)
        tmp_dir.mkdir()
        final_dir = self.output_dir / stage.name
        context = StageContext(
            name=stage.name,
            config=self.config,
            inputs={name: self.output_dir / name for name in stage.upstream},
            output_dir=tmp_dir,
            cache_dir=self.output_dir / "cache",
            previous_dir=final_dir if (final_dir / MANIFEST).is_file() else None,
            beam_args=tuple(self.config.runner.beam_args),
        )
        started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        try:
            result = stage.load_executor()(context)
            if not isinstance(result, StageResult):
                raise HubpipeError(f"stage {stage.name} returned {type(result).__name__}, not a StageResult")
            write_json_atomic(
                tmp_dir / MANIFEST,
                {
                    "stage": stage.name,
                    "fingerprint": fingerprint,
                    "inputs": inputs,
                    "started": started_at,
                    "duration_s": round(time.monotonic() - started, 3),
                    "artifacts": dict(result.artifacts),
                    "results": result.results,
                    "rejected": result.rejected,
                },
            )
            crash_point("runner.before_commit")
            self._commit(tmp_dir, final_dir)
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
        return result

    def _commit(self, tmp_dir: Path, final_dir: Path) -> None:
        """Replaces ``final_dir`` by ``tmp_dir`` with renames only."""
        old_dir = self.output_dir / f".old-{final_dir.name}-{os.getpid()}"
        if final_dir.exists():
            os.replace(final_dir, old_dir)
            crash_point("runner.between_renames")
        os.replace(tmp_dir, final_dir)
        shutil.rmtree(old_dir, ignore_errors=True)

    @staticmethod
    def _complete_manifest(stage_dir: Path) -> dict[str, Any] | None:
        try:
            manifest = read_json(stage_dir / MANIFEST)
        except (OSError, ValueError):
            return None
        return manifest if isinstance(manifest, dict) else None

    def _fill_record(self, record: StageRecord, status: str, manifest: dict[str, Any], stage_dir: Path) -> None:
        record.status = status
        record.duration_s = manifest.get("duration_s", 0.0) if status == "ran" else 0.0
        record.results = manifest.get("results", {})
        record.artifacts = {
            name: os.path.relpath(stage_dir / rel, self.output_dir)
            for name, rel in manifest.get("artifacts", {}).items()
        }

    def _write_report(self, report: RunReport) -> None:
        write_json_atomic(
            self.output_dir / RUN_FILE,
            {
                "status": report.status,
                "process": report.process,
                "hubpipe_version": __version__,
                "output_dir": str(self.output_dir),
                "config": CONFIG_FILE,
                "updated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "stages": [vars(record) for record in report.stages],
                **({"tracking": report.tracking} if report.tracking else {}),
            },
        )

    def track(self, report: RunReport) -> None:
        """Logs the run folder to MLflow when tracking is configured, and records the outcome in run.json."""
        from hubpipe.pipeline.tracking import track_run

        report.tracking = track_run(self.config, self.output_dir, report.status == "succeeded")
        if report.tracking:
            self._write_report(report)


def run_pipeline(
    config: PipelineConfig,
    output_dir: Path,
    stages: Sequence[StageSpec] | None = None,
    until: str | None = None,
) -> RunReport:
    """Runs the pipeline's stages (by default all registered ones) into ``output_dir``."""
    if stages is None:
        from hubpipe.pipeline.stages import registered_stages

        stages = registered_stages()
    return LocalRunner(config, output_dir, stages).run(until=until, use_cache=config.runner.cache)
