"""The publish stage's entry point for the runners."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hubpipe.components.common.publish_root import resolve_root
from hubpipe.components.publish.core import PublishRequest, missing_publication, publish
from hubpipe.components.publish.layout import PUBLISH_FILE, artifacts
from hubpipe.pipeline.core.config import PipelineConfig
from hubpipe.pipeline.core.stage import StageContext, StageResult


def run(ctx: StageContext) -> StageResult:
    request = PublishRequest(
        train_dir=ctx.inputs["train"],
        evaluate_dir=ctx.inputs["evaluate"],
        output_dir=ctx.output_dir,
        root=resolve_root(ctx.config.publish.root, ctx.config.publish.experiment, ctx.cache_root),
        config=ctx.config.publish,
        run_name=ctx.config.run.name,
    )
    publication = publish(request)
    return StageResult(results=publication.results(), artifacts=artifacts(bool(publication.tensorboard_resource)))


def external_inputs(config: PipelineConfig, inputs: Mapping[str, Path], previous_dir: Path | None) -> dict[str, Any]:
    """The publish root, the run name, and what the previous publish of this run folder left there that is gone
    now.

    Deleting a publish root (or the run's logs or model version in it) makes the next run publish again; so does
    another run name (the logs are published again under it).
    """
    root = resolve_root(config.publish.root, config.publish.experiment)
    previous_record = previous_dir / PUBLISH_FILE if previous_dir is not None else None
    missing = missing_publication(root, previous_record)
    return {"publish_root": root, "run_name": config.run.name, "missing": missing}
