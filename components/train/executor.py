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
    """Before a run starts: every backbone is a preset or a handle, and a local one holds a SavedModel."""
    from hubpipe.components.backbones.registry import check_local, resolve_backbone

    for name in config.train.backbones:
        check_local(resolve_backbone(name))


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
    )
    outcome = train_models(request)
    return StageResult(
        results=outcome.results(),
        artifacts=ARTIFACTS,
    )


def external_inputs(config: PipelineConfig, inputs: Mapping[str, Path], previous_dir: Path | None) -> Mapping[str, Any]:
    """The backbones' fingerprints: a changed local SavedModel (or offline build) retrains."""
    from hubpipe.components.backbones import backbone_fingerprint, resolve_backbone

    return {"backbones": {name: backbone_fingerprint(resolve_backbone(name)) for name in config.train.backbones}}
