"""The evaluate stage's entry point for the runners, and what it reads besides its upstream artifacts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hubpipe.components.common.publish_root import find_reference, resolve_root
from hubpipe.components.common.vector_store import store_location
from hubpipe.components.evaluate.candidates import candidate_keys
from hubpipe.components.evaluate.core import EvaluateRequest, evaluate
from hubpipe.components.evaluate.layout import artifacts
from hubpipe.pipeline.core.config import PipelineConfig
from hubpipe.pipeline.core.errors import PublishRootDamaged
from hubpipe.pipeline.core.stage import StageContext, StageResult


def run(ctx: StageContext) -> StageResult:
    request = EvaluateRequest(
        ingest_dir=ctx.inputs["ingest"],
        train_dir=ctx.inputs["train"],
        output_dir=ctx.output_dir,
        vector_store=store_location(ctx.config.train.vector_store, ctx.cache_root),
        publish_root=resolve_root(ctx.config.publish.root, ctx.config.publish.experiment, ctx.cache_root),
        thresholds=ctx.config.evaluate,
    )
    evaluation = evaluate(request)
    return StageResult(results=evaluation.results(), artifacts=artifacts(evaluation.blessed))


def external_inputs(config: PipelineConfig, inputs: Mapping[str, Path], previous_dir: Path | None) -> dict[str, Any]:
    """The publish root and the blessed version the candidates will be compared with.

    A model blessed elsewhere since the last evaluation reruns it; the model this run's own earlier evaluation
    blessed does not (see :func:`hubpipe.components.common.publish_root.find_reference`). The candidates are read
    from the train stage's folder, which is complete by the time this is asked. A damaged publish root is
    recorded as such, so that the stage runs (and stops with :class:`PublishRootDamaged`) rather than reuse
    an earlier evaluation.
    """
    root = resolve_root(config.publish.root, config.publish.experiment)
    train_dir = Path(inputs["train"])
    try:
        reference = find_reference(root, candidate_keys(train_dir) if train_dir.is_dir() else [])
    except PublishRootDamaged as exc:
        return {"publish_root": root, "compared_with": None, "damaged": str(exc)}
    return {"publish_root": root, "compared_with": reference.version if reference else None}
