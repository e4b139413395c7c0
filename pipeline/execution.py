"""How one stage executes, for both runners: fingerprint, stage context, result check, manifest, commit.

A runner decides only where a stage runs and where its folders live (the local runner: ``DIR/<stage>`` through
a temporary sibling; a Kubeflow task: the folder KFP hands it); everything else is here, in this order:

1. :func:`claim_folder` takes the OS lock of the folder the runner writes into (the run folder; for a Kubeflow
   task, the shared folder that keeps stage folders for the next run) and removes what killed processes left
   there; the lock of a killed process is gone with it (see :mod:`hubpipe.pipeline.locking`);
2. :func:`check_inputs` reads the manifest of every upstream folder (a missing, foreign or rejected input
   stops the stage);
3. :func:`fingerprint_inputs` gathers what identifies the stage's output: its parameters, its code version,
   its external inputs and its upstream fingerprints; their :func:`~hubpipe.pipeline.artifacts.stable_hash` is
   the stage's fingerprint;
4. :func:`execute` empties the work folder, builds the :class:`StageContext`, calls the executor, checks its
   :class:`StageResult` and writes ``manifest.json`` last, so that a folder with a manifest is complete;
5. :func:`commit` swaps a finished folder into place with renames only (the local runner's stage folders, a
   Kubeflow task's kept folder); a Kubeflow task's own output stays where KFP put it.

The crash points ``runner.before_commit`` (after 4) and ``runner.between_renames`` (inside 5) are passed by
both runners (see :mod:`hubpipe.pipeline.crashpoints`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import logging
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubpipe.pipeline import __version__
from hubpipe.pipeline.artifacts import (
    STAGING_NAME,
    hash_files,
    read_json,
    replace_dir,
    stable_hash,
    write_json_atomic,
)
from hubpipe.pipeline.config import PipelineConfig, section_dict
from hubpipe.pipeline.crashpoints import crash_point
from hubpipe.pipeline.errors import DataRejected, HubpipeError, StageError
from hubpipe.pipeline.locking import RUN_LOCK_FILE, RunLock, exclusive, remove_path
from hubpipe.pipeline.stage import StageContext, StageResult, StageSpec

LOG = logging.getLogger("hubpipe.execution")

#: The file that marks a stage folder complete; written last.
MANIFEST = "manifest.json"
#: Temporary names under ``<folder>/cache`` (embeddings, checkpoint histories) that only a killed run leaves.
LEFTOVER_IN_CACHE = re.compile(r"^\..+\.tmp(-\d+|\.npz)?$")


@contextlib.contextmanager
def claim_folder(folder: Path, wait: bool = False) -> Iterator[Path]:
    """Holds the OS lock of ``folder`` (``folder/.lock``) and, holding it, removes what killed runs left there.

    Without ``wait`` a second claim fails at once with "another run (pid N) is using DIR" (the local run
    folder); with ``wait`` it waits for the holder (folders that concurrent Kubeflow tasks share). Leftovers are
    those of :func:`killed_run_leftovers`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = exclusive(folder / RUN_LOCK_FILE) if wait else RunLock(folder)
    with lock:
        for leftover in killed_run_leftovers(folder):
            LOG.info("removing %s, left by a run that was killed", leftover.name)
            remove_path(leftover)
        yield folder


def killed_run_leftovers(folder: Path) -> list[Path]:
    """What killed runs left in the run folder ``folder``: :func:`commit`'s ``.tmp-*``/``.old-*`` folders, and
    temporary files and staging folders (:data:`~hubpipe.pipeline.artifacts.STAGING_NAME`) under its cache."""
    found = [*folder.glob(".tmp-*"), *folder.glob(".old-*")]
    cache = (folder / "cache").rglob("*")
    return found + [path for path in cache if LEFTOVER_IN_CACHE.match(path.name) or STAGING_NAME.match(path.name)]


def commit(work_dir: Path, final_dir: Path) -> None:
    """Makes the finished ``work_dir`` the folder ``final_dir`` with renames only (a reader sees one or the other)."""
    crash_point("runner.before_commit")
    replace_dir(work_dir, final_dir, between=lambda: crash_point("runner.between_renames"))


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


def complete_dir(folder: Path | None) -> Path | None:
    """``folder`` when it is a complete stage folder (its manifest, written last, is there), else None."""
    return folder if folder is not None and (folder / MANIFEST).is_file() else None


def read_manifest(stage_dir: Path) -> dict[str, Any] | None:
    """The manifest of a complete stage folder, or None when there is none (or it is unreadable)."""
    try:
        manifest = read_json(stage_dir / MANIFEST)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def check_inputs(spec: StageSpec, inputs: Mapping[str, Path]) -> dict[str, dict[str, Any]]:
    """The manifests of the upstream folders; raises if one is missing, incomplete or rejected."""
    missing = [name for name in spec.upstream if name not in inputs]
    if missing:
        raise StageError(f"stage {spec.name} needs the output of {', '.join(missing)}")
    manifests: dict[str, dict[str, Any]] = {}
    for name in spec.upstream:
        manifest = read_manifest(inputs[name])
        if manifest is None:
            raise StageError(f"input {name} of stage {spec.name} at {inputs[name]} has no readable {MANIFEST}")
        if manifest.get("rejected"):
            raise DataRejected(f"stage {name} rejected the data, so {spec.name} does not run: {manifest['rejected']}")
        manifests[name] = manifest
    return manifests


@dataclass(frozen=True)
class Placement:
    """Where a runner puts one execution of a stage: its upstream folders, its work folder and its caches."""

    inputs: Mapping[str, Path]  # upstream stage name -> its complete folder
    work_dir: Path  # an empty folder the executor writes into
    cache_dir: Path
    previous_dir: Path | None = None  # this stage's complete folder from the previous run, if any


def fingerprint_inputs(spec: StageSpec, config: PipelineConfig, placement: Placement) -> dict[str, Any]:
    """What identifies the stage's output; its :func:`stable_hash` is the stage's fingerprint."""
    upstream = check_inputs(spec, placement.inputs)
    external_fn = spec.load_external_inputs()
    external = external_fn(config, placement.inputs, placement.previous_dir) if external_fn else {}
    return {
        "stage": spec.name,
        "parameters": section_dict(config, *spec.sections),
        "code": code_version(spec.code),
        "external": dict(external),
        "upstream": {name: manifest.get("fingerprint", "") for name, manifest in upstream.items()},
    }


def execute(
    spec: StageSpec, config: PipelineConfig, placement: Placement, inputs: Mapping[str, Any]
) -> tuple[StageResult, dict[str, Any]]:
    """Runs the executor of ``spec`` into ``placement.work_dir`` and writes its manifest there; returns both.

    ``inputs`` is the stage's :func:`fingerprint_inputs`, recorded in the manifest with their hash. The work
    folder is emptied first, so a retried attempt starts afresh.
    """
    empty_dir(placement.work_dir)
    context = StageContext(
        name=spec.name,
        config=config,
        inputs=dict(placement.inputs),
        output_dir=placement.work_dir,
        cache_dir=placement.cache_dir,
        previous_dir=placement.previous_dir,
        beam_args=tuple(config.runner.beam_args),
    )
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    started = time.monotonic()
    result = spec.load_executor()(context)
    if not isinstance(result, StageResult):
        raise StageError(f"stage {spec.name} returned {type(result).__name__}, not a StageResult")
    manifest = {
        "stage": spec.name,
        "fingerprint": stable_hash(inputs),
        "inputs": dict(inputs),
        "started": started_at,
        "duration_s": round(time.monotonic() - started, 3),
        "artifacts": dict(result.artifacts),
        "results": result.results,
        "rejected": result.rejected,
    }
    write_json_atomic(placement.work_dir / MANIFEST, manifest)
    return result, manifest


def empty_dir(folder: Path) -> None:
    """Makes ``folder`` an existing, empty folder; the folder itself stays (KFP may have mounted it)."""
    folder.mkdir(parents=True, exist_ok=True)
    for leftover in folder.iterdir():
        remove_path(leftover)
