"""The local runner: runs the stage DAG in one process, with a fingerprint cache and atomic artifacts.

A run folder ``DIR`` holds run.json, the resolved configuration, one folder per stage and a cache shared by
its runs (the names and their picture: :mod:`hubpipe.pipeline.core.run_folder`).

A run into a folder that is not empty and was never claimed is refused unless ``force_output`` (the user's
files are not hubpipe's to sweep). A run holds an OS lock on ``DIR/.lock`` from start to end (see
:mod:`hubpipe.pipeline.core.locking`): a second run into the same folder stops with "another run (pid N) is using
DIR", while the lock of a killed run is gone with its process. Holding the lock, a run removes what killed runs
left, by exact names (``.tmp-<stage>-<pid>``, ``.old-<stage>-<pid>``, and temporaries in the cache's folders;
see :func:`~hubpipe.pipeline.core.execution.killed_run_leftovers`). run.json records the run's pid, host and start
time.

A stage runs in ``DIR/.tmp-<stage>-<pid>`` and is renamed to ``DIR/<stage>`` only once its executor has
returned and its manifest is written, so a stage that is killed midway leaves no folder a rerun would take
for complete. A stage is skipped (``cached``) when ``DIR/<stage>/manifest.json`` holds the fingerprint the
stage would have now (a hash of its parameters, its code version, its external inputs and the identities of
its upstream folders, so a change reruns the stage and everything downstream) and every file the manifest
lists still has its recorded size and sha256; a damaged or missing file reruns the stage. How a stage
executes (fingerprint, context, manifest) is :mod:`hubpipe.pipeline.core.execution`, shared with Kubeflow tasks;
this module decides only where the folders are, the cache check and run.json.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hubpipe.components.publish import layout as publish_layout
from hubpipe.pipeline.core.artifacts import read_json, stable_hash, staging_dir, write_json_atomic, write_text_atomic
from hubpipe.pipeline.core.cache_root import cache_root, writable_cache_root
from hubpipe.pipeline.core.config import PipelineConfig, to_yaml
from hubpipe.pipeline.core.errors import DataRejected, UsageError
from hubpipe.pipeline.core.execution import (
    MANIFEST,
    Placement,
    claim_folder,
    commit,
    complete_dir,
    damaged_file,
    execute,
    fingerprint_inputs,
    read_manifest,
    refuse_foreign_folder,
    topological_order,
)
from hubpipe.pipeline.core.locking import process_identity
from hubpipe.pipeline.core.run_folder import CACHE_DIR, CONFIG_FILE, RUN_FILE, RUN_MARKER
from hubpipe.pipeline.core.stage import StageResult, StageSpec
from hubpipe.pipeline.core.version import __version__
from hubpipe.pipeline.stages import PUBLISH_ROOT_CHECK

LOG = logging.getLogger("hubpipe.runner")


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
    tracking: dict[str, Any] | None = None  # what MLflow tracking did (see hubpipe.pipeline.tracking.run_tracking)
    publish_root: str = ""  # publish_root_line() of a run that evaluates or publishes
    configured_name: str = ""  # run.name

    def stage(self, name: str) -> StageRecord:
        return next(record for record in self.stages if record.name == name)

    def published(self) -> dict[str, Any]:
        """publish's results when it ran or was taken from the cache in this run, else {}."""
        record = next((record for record in self.stages if record.name == publish_layout.STAGE), None)
        return record.results if record is not None and record.status in ("ran", "cached") else {}

    @property
    def name(self) -> str:
        """The run name: the one publish gave the run's logs (``run.name``, or with a suffix when another
        evaluation holds it), else ``run.name``."""
        return self.published().get("run_name") or self.configured_name


def with_experiment(config: PipelineConfig, output_dir: Path) -> PipelineConfig:
    """``config`` with ``publish.experiment`` filled in with the run folder's name when it is empty and no
    ``publish.root`` is set: the default publish root is then that experiment's, so unrelated runs on one machine
    do not gate each other (resolved_config.yaml records the name, so a rerun from it publishes alongside)."""
    from hubpipe.components.common.publish_root import experiment_name

    publish = config.publish
    if publish.root.strip() or publish.experiment:
        return config
    return replace(config, publish=replace(publish, experiment=experiment_name(output_dir.name)))


def with_run_name(config: PipelineConfig, output_dir: Path) -> PipelineConfig:
    """``config`` with ``run.name`` filled in when it is empty: the run folder's name and the date hubpipe first
    claimed the folder (today for a new one), e.g. ``food-2026-12-07``; a rerun into the folder keeps it."""
    from hubpipe.components.common.publish_root import experiment_name

    if config.run.name:
        return config
    try:
        claimed = str(read_json(output_dir / RUN_MARKER).get("claimed", ""))
    except (OSError, ValueError, AttributeError):
        claimed = ""
    date = claimed[:10] if claimed[:4].isdigit() else dt.date.today().isoformat()
    name = f"{experiment_name(output_dir.name)[:89]}-{date}"
    return replace(config, run=replace(config.run, name=name))


def run_links(report: RunReport) -> dict[str, str]:
    """Where this run's other records are: the run folder, what publish.json tells (the publish root, the run's
    TensorBoard logs, its published version, the evaluation id), its MLflow run (from tracking); only those it
    has."""
    published_file = report.output_dir / publish_layout.STAGE / publish_layout.PUBLISH_FILE
    published = read_json(published_file) if report.published() else {}
    tracking = report.tracking or {}
    links = {
        "run_folder": str(report.output_dir),
        **publish_layout.publication_links(published),
        "mlflow_run": tracking.get("run_url") or tracking.get("run_id"),
    }
    return {key: str(value) for key, value in links.items() if value}


def publish_root_line(config: PipelineConfig) -> str:
    """Where the run publishes and compares with the last blessed model, in a few words."""
    from hubpipe.components.common.publish_root import resolve_root

    root = resolve_root(config.publish.root, config.publish.experiment)
    if config.publish.root.strip():
        return f"publish root {root}"
    return f"publish root {root} (experiment {config.publish.experiment}; to share one: publish.root or .experiment)"


def rejection(message: str, stage_dir: Path, artifacts: dict[str, str]) -> DataRejected:
    """The stage's rejection, with the path of its report when it has one (its ``report`` artifact)."""
    report = artifacts.get("report")
    where = f" (report: {stage_dir.parent / report})" if report else ""
    return DataRejected(f"{message}{where}")


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

    def __init__(
        self, config: PipelineConfig, output_dir: Path, stages: Sequence[StageSpec], force_output: bool = False
    ):
        self.output_dir = Path(output_dir).resolve()
        self.config = with_run_name(with_experiment(config, self.output_dir), self.output_dir)
        self.stages = topological_order(stages)
        self.force_output = force_output  # run into a non-empty folder that is not a run folder
        self.cache_root = cache_root()  # hubpipe's cache folder; checked (and created) when the run starts

    def run(self, until: str | None = None, use_cache: bool = True) -> RunReport:
        selected = select_until(self.stages, until)
        if not self.force_output:
            refuse_foreign_folder(self.output_dir)
        writable_cache_root(create=False)  # first: the default publish root and every shared cache live there
        preflight(selected, self.config)  # before the output folder is even created
        self.cache_root = writable_cache_root()
        names = [stage.name for stage in self.stages]
        with claim_folder(self.output_dir, names, force=self.force_output):
            return self._run_locked(selected, use_cache)

    def _run_locked(self, selected: list[StageSpec], use_cache: bool) -> RunReport:
        write_text_atomic(self.output_dir / CONFIG_FILE, to_yaml(self.config))
        report = RunReport(
            self.output_dir, [StageRecord(stage.name) for stage in selected], configured_name=self.config.run.name
        )
        if any(stage.preflight == PUBLISH_ROOT_CHECK for stage in selected):
            report.publish_root = publish_root_line(self.config)
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

    def placement(self, stage: StageSpec) -> Placement:
        """Where ``stage`` runs in the run folder: upstream ``DIR/<name>``, a ``.tmp-`` sibling of ``DIR/<stage>``."""
        final_dir = self.output_dir / stage.name
        return Placement(
            inputs={name: self.output_dir / name for name in stage.upstream},
            work_dir=staging_dir(final_dir),
            cache_dir=self.output_dir / CACHE_DIR,
            cache_root=self.cache_root,
            previous_dir=complete_dir(final_dir),
        )

    def _run_stage(self, stage: StageSpec, record: StageRecord, use_cache: bool) -> None:
        placement = self.placement(stage)
        inputs = fingerprint_inputs(stage, self.config, placement)
        record.fingerprint = stable_hash(inputs)
        final_dir = self.output_dir / stage.name
        manifest = read_manifest(final_dir)
        if use_cache and manifest and manifest.get("fingerprint") == record.fingerprint:
            damage = damaged_file(final_dir, manifest)
            if damage is None:
                self._reuse(stage, record, manifest, final_dir)
                return
            LOG.warning("[%s] not reused: %s", stage.name, damage)
            placement = replace(placement, previous_dir=None)  # nor is it a baseline for the rerun
        LOG.info("[%s] running", stage.name)
        started = time.monotonic()
        try:
            result = self._execute(stage, placement, inputs, final_dir)
        except BaseException as exc:
            record.status, record.duration_s = "failed", round(time.monotonic() - started, 3)
            record.error = str(exc) or type(exc).__name__
            raise
        # Read back rather than taken from execute: results in their JSON form, as a cached stage gives them.
        self._fill_record(record, "ran", read_json(final_dir / MANIFEST), final_dir)
        LOG.info("[%s] done in %.1f s", stage.name, record.duration_s)
        if result.rejected:
            record.status, record.error = "failed", result.rejected
            raise rejection(result.rejected, final_dir, record.artifacts)

    def _reuse(self, stage: StageSpec, record: StageRecord, manifest: dict[str, Any], final_dir: Path) -> None:
        """Records the verified folder of ``stage`` as ``cached``; stops the run when it had rejected the data."""
        self._fill_record(record, "cached", manifest, final_dir)
        LOG.info("[%s] cached (fingerprint %s)", stage.name, record.fingerprint[:12])
        if manifest.get("rejected"):
            raise rejection(manifest["rejected"], final_dir, record.artifacts)

    def _execute(self, stage: StageSpec, placement: Placement, inputs: dict[str, Any], final_dir: Path) -> StageResult:
        """Executes ``stage`` in its work folder and commits it to ``final_dir``; a failure leaves no trace."""
        try:
            result, _ = execute(stage, self.config, placement, inputs)
            commit(placement.work_dir, final_dir)
        except BaseException:
            shutil.rmtree(placement.work_dir, ignore_errors=True)
            raise
        return result

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
                "name": report.name,
                "status": report.status,
                "process": report.process,
                "hubpipe_version": __version__,
                "output_dir": str(self.output_dir),
                "config": CONFIG_FILE,
                "updated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "links": run_links(report),
                "stages": [vars(record) for record in report.stages],
                **({"tracking": report.tracking} if report.tracking else {}),
            },
        )

    def track(self, report: RunReport) -> None:
        """Logs the run folder to MLflow when tracking is configured, and records the outcome in run.json."""
        from hubpipe.pipeline.tracking.run_tracking import track_run

        report.tracking = track_run(self.config, self.output_dir, report.status == "succeeded")
        if report.tracking:
            self._write_report(report)


def run_summary(report: RunReport) -> str:
    """One line on what a run did: which stages ran and which were taken from the cache, the run's name and
    folder, and the publish root when a stage used it."""
    parts = []
    for status, label in (("cached", "from the cache"), ("ran", "ran"), ("failed", "failed")):
        names = [record.name for record in report.stages if record.status == status]
        if names:
            parts.append(f"{label}: {', '.join(names)}")
    where = f"run {report.name}, run folder {report.output_dir}" if report.name else f"run folder {report.output_dir}"
    if report.publish_root:
        where += f"; {report.publish_root}"
    return f"{'; '.join(parts) or 'no stage'} ({where})"


def run_pipeline(
    config: PipelineConfig,
    output_dir: Path,
    stages: Sequence[StageSpec] | None = None,
    until: str | None = None,
    force_output: bool = False,
) -> RunReport:
    """Runs the pipeline's stages (by default all registered ones) into ``output_dir``.

    ``force_output`` allows an ``output_dir`` that is not empty and is not a run folder (otherwise refused).
    """
    if stages is None:
        from hubpipe.pipeline.stages import registered_stages

        stages = registered_stages()
    runner = LocalRunner(config, output_dir, stages, force_output=force_output)
    return runner.run(until=until, use_cache=config.runner.cache)
