"""The ingest stage's executor: resolves ``data.source`` (download, extraction, sample generation into the
shared cache) and runs the ingest core into ``ctx.output_dir``."""

from __future__ import annotations

from hubpipe.components.ingest.core import IngestRequest, ingest
from hubpipe.components.ingest.layout import ARTIFACTS
from hubpipe.components.ingest.sources import resolve_source
from hubpipe.pipeline.core.crashpoints import crash_point
from hubpipe.pipeline.core.stage import StageContext, StageResult


def run(ctx: StageContext) -> StageResult:
    source = resolve_source(ctx.config.data, ctx.cache_root)
    outcome = ingest(IngestRequest(source, ctx.output_dir, ctx.config.data, tuple(ctx.beam_args)))
    crash_point("ingest.after_records")
    return StageResult(results=outcome.results(), artifacts=ARTIFACTS, rejected=outcome.rejected)
