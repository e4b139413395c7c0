"""The validate stage's executor: validates ``ctx.inputs["ingest"]`` into ``ctx.output_dir``; with policy
``fail`` and error anomalies the result is rejected (the run stops before training, artifacts kept)."""

from __future__ import annotations

from hubpipe.components.validate.core import ValidateRequest, validate
from hubpipe.components.validate.layout import ARTIFACTS
from hubpipe.pipeline.core.stage import StageContext, StageResult


def run(ctx: StageContext) -> StageResult:
    request = ValidateRequest(
        ingest_dir=ctx.inputs["ingest"],
        output_dir=ctx.output_dir,
        settings=ctx.config.validate,
        data=ctx.config.data,
        previous_dir=ctx.previous_dir,
        beam_args=tuple(ctx.beam_args),
    )
    outcome = validate(request)
    return StageResult(results=outcome.results(), artifacts=ARTIFACTS, rejected=outcome.rejected)
