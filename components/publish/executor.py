"""The publish stage's entry point for the runners."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hubpipe.components.common.uris import require_scheme
from hubpipe.components.publish.core import PUBLISH_FILE, PublishRequest, missing_publication, publish
from hubpipe.components.publish.kubeflow import RESOURCE_FILE
from hubpipe.components.publish.layout import resolve_root
from hubpipe.pipeline.config import PipelineConfig
from hubpipe.pipeline.stage import StageContext, StageResult


def preflight(config: PipelineConfig) -> None:
    """Before a run starts: a remote publish root must be on a file system hubpipe can write to."""
    require_scheme(config.publish.root.strip(), "publish.root")


def run(ctx: StageContext) -> StageResult:
    request = PublishRequest(
        train_dir=ctx.inputs["train"],
        evaluate_dir=ctx.inputs["evaluate"],
        output_dir=ctx.output_dir,
        root=resolve_root(ctx.config.publish.root),
        config=ctx.config.publish,
    )
    publication = publish(request)
    artifacts = {"publish": PUBLISH_FILE}
    if publication.tensorboard_resource:
        artifacts["tensorboard_resource"] = RESOURCE_FILE
    return StageResult(results=publication.results(), artifacts=artifacts)


def external_inputs(config: PipelineConfig, output_root: Path) -> dict[str, Any]:
    """The publish root, and what the previous publish of this run folder left there that is gone now.

    Deleting a publish root (or the run's logs or model version in it) makes the next run publish again.
    """
    root = resolve_root(config.publish.root)
    return {"publish_root": root, "missing": missing_publication(root, Path(output_root) / "publish" / PUBLISH_FILE)}
