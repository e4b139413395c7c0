"""How one stage executes, for both runners: fingerprint, stage context, result check, manifest, commit.

A runner decides only where a stage runs and where its folders live (the local runner: ``DIR/<stage>`` through
a temporary sibling; a Kubeflow task: the folder KFP hands it); everything else is here, in this order:

1. :func:`claim_folder` marks the folder the runner writes into as hubpipe's (the run folder; for a Kubeflow
   task, the shared folder that keeps stage folders for the next run), takes its OS lock and removes what
   killed processes left there, by the exact names hubpipe gives its temporaries; it refuses a non-empty
   folder that hubpipe never claimed unless told otherwise. The lock of a killed process is gone with it (see
   :mod:`hubpipe.pipeline.core.locking`);
2. :func:`check_inputs` reads the manifest of every upstream folder (a missing, foreign or rejected input
   stops the stage);
3. :func:`fingerprint_inputs` gathers what identifies the stage's output: its parameters, its code version,
   its external inputs and its upstream fingerprints; their :func:`~hubpipe.pipeline.core.artifacts.stable_hash` is
   the stage's fingerprint;
4. :func:`execute` empties the work folder, builds the :class:`StageContext`, calls the executor, checks its
   :class:`StageResult` and writes ``manifest.json`` last, so that a folder with a manifest is complete; the
   manifest records the size and sha256 of every file of the folder, which :func:`damaged_file` checks before
   a runner reuses the folder;
5. :func:`commit` swaps a finished folder into place with renames only (the local runner's stage folders, a
   Kubeflow task's kept folder); a Kubeflow task's own output stays where KFP put it.

The crash points ``runner.before_commit`` (after 4) and ``runner.between_renames`` (inside 5) are passed by
both runners (see :mod:`hubpipe.pipeline.core.crashpoints`).
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

from hubpipe.pipeline.core.artifacts import (
    ATOMIC_TMP_NAME,
    STAGING_NAME,
    atomic_tmp_name,
    file_digest,
    hash_files,
    read_json,
    replace_dir,
    stable_hash,
    write_json_atomic,
)
from hubpipe.pipeline.core.config import PipelineConfig, section_dict
from hubpipe.pipeline.core.crashpoints import crash_point
from hubpipe.pipeline.core.errors import DataRejected, HubpipeError, StageError, UsageError
from hubpipe.pipeline.core.locking import OWNED_TMP_NAME, RUN_LOCK_FILE, RunLock, exclusive, remove_path
from hubpipe.pipeline.core.run_folder import CACHE_DIR, CACHE_FOLDERS, CONFIG_FILE, RUN_FILE, RUN_MARKER, is_run_folder
from hubpipe.pipeline.core.stage import StageContext, StageResult, StageSpec
from hubpipe.pipeline.core.version import __version__

LOG = logging.getLogger("hubpipe.execution")

#: The file that marks a stage folder complete; written last.
MANIFEST = "manifest.json"


@contextlib.contextmanager
def claim_folder(folder: Path, stages: Iterable[str], *, wait: bool = False, force: bool = False) -> Iterator[Path]:
    """Claims ``folder`` as a run folder, holds its OS lock (``folder/.lock``) and, holding it, removes what
    killed runs left there.

    A folder that exists, is not empty and was never claimed (:func:`is_run_folder`) is refused with a
    :class:`UsageError` unless ``force``; claiming writes :data:`RUN_MARKER`. Without ``wait`` a second claim
    fails at once with "another run (pid N) is using DIR" (the local run folder); with ``wait`` it waits for
    the holder (folders that concurrent Kubeflow tasks share). Leftovers are those of
    :func:`killed_run_leftovers` for the stage folders named ``stages``.
    """
    folder = Path(folder)
    if not force:
        refuse_foreign_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / RUN_MARKER).is_file():
        write_json_atomic(folder / RUN_MARKER, {"hubpipe_version": __version__, "claimed": _now()})
    lock = exclusive(folder / RUN_LOCK_FILE) if wait else RunLock(folder)
    with lock:
        for leftover in killed_run_leftovers(folder, stages):
            LOG.info("removing %s, left by a run that was killed", leftover.name)
            remove_path(leftover)
        yield folder


def refuse_foreign_folder(folder: Path) -> None:
    """Raises :class:`UsageError` when ``folder`` exists, is not empty and is not a run folder."""
    if not folder.exists() or is_run_folder(folder):
        return
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder; choose another --output")
    if any(folder.iterdir()):
        raise UsageError(
            f"{folder} is not empty and is not a hubpipe run folder; choose another --output, or run into it "
            "anyway with --force-output (force_output=True in hubpipe.run)"
        )


def killed_run_leftovers(folder: Path, stages: Iterable[str]) -> list[Path]:
    """What killed runs left in the run folder ``folder``, by the exact names hubpipe gives its temporaries:
    :func:`commit`'s ``.tmp-<stage>-<pid>``/``.old-<stage>-<pid>`` folders of the stages ``stages``, the
    temporary files of run.json and the configuration, and temporary files and staging folders in the
    :data:`CACHE_FOLDERS`. Nothing in a folder without :data:`RUN_MARKER`.
    """
    folder = Path(folder)
    if not (folder / RUN_MARKER).is_file():
        return []
    alternatives = "|".join(re.escape(stage) for stage in sorted(stages)) or "(?!)"
    stage_staging = re.compile(rf"^\.(tmp|old)-({alternatives})-\d+$")
    own_files = [atomic_tmp_name(name) for name in (RUN_FILE, CONFIG_FILE, RUN_MARKER)]
    found = [
        path
        for path in folder.iterdir()
        if stage_staging.match(path.name) or any(pattern.match(path.name) for pattern in own_files)
    ]
    for name in CACHE_FOLDERS:
        cache = folder / CACHE_DIR / name
        found += [path for path in cache.rglob("*") if _is_cache_temporary(path.name)]
    return found


def _is_cache_temporary(name: str) -> bool:
    """A name hubpipe gives a temporary in its cache folders: a staging or retired folder
    (:func:`~hubpipe.pipeline.core.artifacts.staging_dir`), an atomic write's file, an owned temporary."""
    return any(pattern.match(name) for pattern in (STAGING_NAME, ATOMIC_TMP_NAME, OWNED_TMP_NAME))


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


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
    cache_root: Path  # hubpipe's cache folder, chosen by the runner (see hubpipe.pipeline.core.cache_root)
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
        "upstream": {name: output_identity(manifest) for name, manifest in upstream.items()},
    }


def output_identity(manifest: Mapping[str, Any]) -> str:
    """What identifies a stage folder to the stages that read it: its fingerprint and its files' digests.

    A stage that reran with the same fingerprint (its folder was missing or damaged) makes its readers rerun
    when its files came out different.
    """
    return stable_hash({"fingerprint": manifest.get("fingerprint", ""), "files": manifest.get("files")})


def execute(
    spec: StageSpec, config: PipelineConfig, placement: Placement, inputs: Mapping[str, Any]
) -> tuple[StageResult, dict[str, Any]]:
    """Runs the executor of ``spec`` into ``placement.work_dir`` and writes its manifest there; returns both.

    ``inputs`` is the stage's :func:`fingerprint_inputs`, recorded in the manifest with their hash; the context
    takes the code version from them. The work folder is emptied first, so a retried attempt starts afresh.
    """
    empty_dir(placement.work_dir)
    context = StageContext(
        name=spec.name,
        config=config,
        inputs=dict(placement.inputs),
        output_dir=placement.work_dir,
        cache_dir=placement.cache_dir,
        cache_root=placement.cache_root,
        code_version=str(inputs["code"]),
        previous_dir=placement.previous_dir,
        beam_args=tuple(config.runner.beam_args),
    )
    started_at = _now()
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
        "files": file_digests(placement.work_dir),
    }
    write_json_atomic(placement.work_dir / MANIFEST, manifest)
    return result, manifest


def file_digests(stage_dir: Path) -> dict[str, dict[str, Any]]:
    """The size and sha256 of every file in ``stage_dir`` except its manifest, by path relative to it."""
    return {
        path.relative_to(stage_dir).as_posix(): {"bytes": path.stat().st_size, "sha256": file_digest(path)}
        for path in sorted(stage_dir.rglob("*"))
        if path.is_file() and not path.is_symlink() and path != stage_dir / MANIFEST
    }


def damaged_file(stage_dir: Path, manifest: Mapping[str, Any]) -> str | None:
    """Why the complete stage folder ``stage_dir`` cannot be reused as its manifest describes it, or None.

    Every file the manifest lists must be there with its recorded size (checked first, for all files) and
    sha256. A manifest without digests (written by an earlier version) cannot be verified, so its folder is
    not reused: the stage reruns once.
    """
    files = manifest.get("files")
    if not isinstance(files, dict):
        return f"its {MANIFEST} records no file digests (written by an earlier version)"
    entries = [(stage_dir / name, entry) for name, entry in files.items() if isinstance(entry, dict)]
    if len(entries) != len(files) or any(".." in Path(name).parts or Path(name).is_absolute() for name in files):
        return f"its {MANIFEST} lists files it cannot describe"
    for path, entry in entries:
        try:
            size = path.stat().st_size
        except OSError:
            return f"{path.relative_to(stage_dir)} is missing"
        if size != entry.get("bytes"):
            return f"{path.relative_to(stage_dir)} is damaged ({size} bytes, {entry.get('bytes')} when written)"
    for path, entry in entries:
        try:
            digest = file_digest(path)
        except OSError as exc:
            return f"{path.relative_to(stage_dir)} cannot be read ({exc.strerror or exc})"
        if digest != entry.get("sha256"):
            return f"{path.relative_to(stage_dir)} is damaged (its sha256 differs from the one recorded when written)"
    return None


def empty_dir(folder: Path) -> None:
    """Makes ``folder`` an existing, empty folder; the folder itself stays (KFP may have mounted it)."""
    folder.mkdir(parents=True, exist_ok=True)
    for leftover in folder.iterdir():
        remove_path(leftover)
