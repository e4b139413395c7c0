"""The validate stage's executor: validates ``ctx.inputs["ingest"]`` into ``ctx.output_dir``; with policy
``fail`` and error anomalies the result is rejected (the run stops before training, artifacts kept)."""

from __future__ import annotations

from hubpipe.components.validate.core import validate
from hubpipe.pipeline.stage import StageContext, StageResult


def run(ctx: StageContext) -> StageResult:
    report = validate(
        ctx.inputs["ingest"],
        ctx.output_dir,
        ctx.config.validate,
        ctx.config.data,
        previous_dir=ctx.previous_dir,
        beam_args=ctx.beam_args,
    )
    return StageResult(results=report.results, artifacts=report.artifacts, rejected=report.rejected)
