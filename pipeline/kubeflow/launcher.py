"""Runs one stage inside a Kubeflow task: KFP artifacts in, the stage's executor, typed KFP outputs out.

Every ``components/<stage>/kfp_component.py`` calls :func:`launch` from its component function. The launcher
runs the stage through the execution core the local runner uses (:mod:`hubpipe.pipeline.core.execution`), with the
KFP artifact folders as upstream folders and work folder, so its ``manifest.json`` is the one a local run
writes. Then "fillers" (:mod:`hubpipe.pipeline.kubeflow.ui_outputs`) fill the component's other typed outputs,
the ones the KFP UI shows, from the finished stage.

A stage whose policy rejects the data (``StageResult.rejected``) still succeeds here, so that KFP keeps its
artifacts (the validation report shows why); the next stage refuses to start on a rejected input and fails
with exit code 3, which stops the run. This module does not import kfp.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hubpipe.pipeline.core.artifacts import staging_dir
from hubpipe.pipeline.core.cache_root import cache_root, writable_cache_root
from hubpipe.pipeline.core.config import PipelineConfig
from hubpipe.pipeline.core.errors import HubpipeError, StageError
from hubpipe.pipeline.core.execution import (
    Placement,
    claim_folder,
    commit,
    complete_dir,
    execute,
    fingerprint_inputs,
)
from hubpipe.pipeline.core.log_setup import configure_logging
from hubpipe.pipeline.core.stage import StageResult, StageSpec
from hubpipe.pipeline.core.version import __version__
from hubpipe.pipeline.kubeflow.parameters import resolve_config
from hubpipe.pipeline.kubeflow.ui_outputs import Artifact, Filler, Launched, scalar_results

LOG = logging.getLogger("hubpipe.kubeflow")


def registered_stage(name: str) -> StageSpec:
    from hubpipe.pipeline.stages import registered_stages

    for spec in registered_stages():
        if spec.name == name:
            return spec
    raise StageError(f"stage {name} is not registered in hubpipe.pipeline.stages")


def launch(
    stage: str | StageSpec,
    config: str | Mapping[str, Any],
    parameters: Mapping[str, Any],
    *,
    output: Artifact,
    inputs: Mapping[str, Artifact] | None = None,
    fill: Sequence[tuple[Artifact, Filler]] = (),
    keep_previous: bool = False,
    narrow: Callable[[PipelineConfig], PipelineConfig] | None = None,
) -> None:
    """Runs ``stage`` (a registered stage's name, or a spec) as a KFP task and fills its outputs.

    ``config`` (JSON) and ``parameters`` (by name) are the pipeline parameters the component received;
    ``output`` receives the stage's folder; ``inputs`` maps upstream stage names to their folder artifacts;
    ``fill`` pairs each other output with the function that fills it (see
    :mod:`~hubpipe.pipeline.kubeflow.ui_outputs`). With ``keep_previous`` the stage folder is also kept in
    hubpipe's cache (a volume on a cluster) and given to the next run as ``previous_dir``, as the local runner
    does. ``narrow`` turns the resolved configuration into the one this task runs with (a train task of the
    fanned-out train stage: :mod:`.fan_out`). A user-facing error ends the process with one line and the hubpipe
    exit code.
    """
    configure_logging(debug=False)
    try:
        spec = registered_stage(stage) if isinstance(stage, str) else stage
        resolved = resolve_config(config, parameters)
        if narrow is not None:
            resolved = narrow(resolved)
        input_dirs = {name: Path(artifact.path) for name, artifact in (inputs or {}).items()}
        output_dir = Path(output.path)
        previous = previous_location(spec.name) if keep_previous else None
        previous_dir = complete_dir(previous)
        result, manifest = run_stage(spec, resolved, input_dirs, output_dir, previous_dir)
        if previous is not None:
            keep_as_previous(output_dir, previous)
        output.metadata.update(scalar_results(result.results))
        output.metadata["hubpipe_version"] = __version__
        launched = Launched(spec, result, manifest, output_dir, output.uri, input_dirs, resolved)
        for artifact, filler in fill:
            Path(artifact.path).parent.mkdir(parents=True, exist_ok=True)
            filler(launched, artifact)
    except HubpipeError as exc:
        LOG.error("error: %s", exc)
        raise SystemExit(exc.exit_code) from None


def run_stage(
    spec: StageSpec,
    config: PipelineConfig,
    inputs: Mapping[str, Path],
    output_dir: Path,
    previous_dir: Path | None = None,
) -> tuple[StageResult, dict[str, Any]]:
    """Runs ``spec`` through the execution core into ``output_dir`` (KFP's folder, used in place); returns the
    result and the manifest.

    ``inputs`` must hold a complete stage folder (with manifest.json) for every upstream stage; an input that a
    policy rejected stops here with :class:`DataRejected`. A retried attempt starts from an empty folder.
    """
    root = writable_cache_root()
    placement = Placement(
        inputs=dict(inputs), work_dir=output_dir, cache_dir=root / "stages", cache_root=root, previous_dir=previous_dir
    )
    fingerprint = fingerprint_inputs(spec, config, placement)
    LOG.info("[%s] running", spec.name)
    result, manifest = execute(spec, config, placement, fingerprint)
    if result.rejected:
        LOG.warning("[%s] rejected: %s (the next stage will not start)", spec.name, result.rejected)
    LOG.info("[%s] done in %.1f s", spec.name, manifest["duration_s"])
    return result, manifest


def previous_location(stage: str) -> Path:
    """Where tasks of ``stage`` keep their folder for the next run: hubpipe's cache, a volume on a cluster."""
    return cache_root() / "kubeflow" / "previous" / stage


def keep_as_previous(output_dir: Path, location: Path) -> None:
    """Replaces ``location`` by a copy of ``output_dir`` (copied aside, then swapped in with renames).

    Tasks of concurrent runs take turns through the lock of ``location``'s parent folder, a folder of hubpipe's
    own cache (claimed without asking, also when an earlier version left it unmarked).
    """
    from hubpipe.pipeline.stages import stage_names

    with claim_folder(location.parent, stage_names(), wait=True, force=True):
        staging = staging_dir(location)
        shutil.copytree(output_dir, staging)
        commit(staging, location)
