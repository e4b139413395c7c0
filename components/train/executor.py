"""The train stage's executor: reads the ingest stage's examples, writes models, logs and summary.json.

``run(ctx)`` is what the local runner and the Kubeflow component call; the work happens in :mod:`.core`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hubpipe.components.train.core import train_models
from hubpipe.components.train.layout import ARTIFACTS
from hubpipe.components.train.session import TrainRequest
from hubpipe.pipeline.core.config import PipelineConfig
from hubpipe.pipeline.core.stage import StageContext, StageResult


def preflight(config: PipelineConfig) -> None:
    """Before a run starts: every backbone is a preset or a handle, a local one holds a SavedModel, a URL is in
    tensorflow_hub's cache or answered by its server, and a configured local vector store can be written to."""
    from hubpipe.components.backbones.registry import check_local, check_reachable, resolve_backbone
    from hubpipe.components.common.vector_store import require_writable_store

    require_writable_store(config.train.vector_store)
    for name in config.train.backbones:
        spec = resolve_backbone(name)
        check_local(spec)
        check_reachable(spec)


def run(ctx: StageContext) -> StageResult:
    request = TrainRequest(
        ingest_dir=Path(ctx.inputs["ingest"]),
        output_dir=Path(ctx.output_dir),
        cache_dir=Path(ctx.cache_dir),
        cache_root=Path(ctx.cache_root),
        train=ctx.config.train,
        image_size=ctx.config.data.image_size,
        code_version=ctx.code_version,
        max_pixels=ctx.config.data.max_pixels,
        beam_args=tuple(ctx.beam_args),
    )
    outcome = train_models(request)
    return StageResult(
        results=outcome.results(),
        artifacts=ARTIFACTS,
    )


def collect(ctx: StageContext) -> StageResult:
    """The train stage's folder merged from the folders of its parts (``ctx.inputs``, by part name in training
    order): on Kubeflow, one train task per backbone and one for the baseline (see :mod:`.merge`)."""
    from hubpipe.components.train.merge import TrainPart, merge_train_folders, merged_results
    from hubpipe.pipeline.core.execution import read_manifest

    parts = [TrainPart(name, Path(folder)) for name, folder in ctx.inputs.items()]
    merge_train_folders(parts, Path(ctx.output_dir))
    results = [(read_manifest(part.folder) or {}).get("results") or {} for part in parts]
    return StageResult(results=merged_results([part.name for part in parts], results), artifacts=ARTIFACTS)


def external_inputs(config: PipelineConfig, inputs: Mapping[str, Path], previous_dir: Path | None) -> Mapping[str, Any]:
    """The backbones' fingerprints: a changed local SavedModel (or offline build) retrains."""
    from hubpipe.components.backbones import backbone_fingerprint, resolve_backbone

    return {"backbones": {name: backbone_fingerprint(resolve_backbone(name)) for name in config.train.backbones}}
