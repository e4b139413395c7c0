"""Toy stage executors for runner tests: each writes a file and counts its runs."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from hubpipe.pipeline.core.stage import StageContext, StageResult, StageSpec


def _count(ctx: StageContext) -> int:
    counter = Path(os.environ["FAKE_STAGE_COUNTS"]) / ctx.name
    runs = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(runs))
    return runs


def write_value(ctx: StageContext) -> StageResult:
    """Writes value.txt from its upstream's value plus its own parameter; dies midway when asked to.

    ``FAKE_STAGE_NOISE`` goes into partial.txt and not into the fingerprint: output that differs between two
    runs of the same inputs, as a timestamp in a report would.
    """
    runs = _count(ctx)
    upstream = "".join((path / "value.txt").read_text() for path in ctx.inputs.values())
    (ctx.output_dir / "partial.txt").write_text("started" + os.environ.get("FAKE_STAGE_NOISE", ""))
    if os.environ.get("FAKE_STAGE_KILL") == ctx.name:
        os.kill(os.getpid(), signal.SIGKILL)
    value = f"{upstream}{ctx.name}={ctx.config.train.epochs};"
    (ctx.output_dir / "value.txt").write_text(value)
    return StageResult(results={"runs": runs, "value": value}, artifacts={"value": "value.txt"})


def report_context(ctx: StageContext) -> StageResult:
    """Records what the runner put in the context besides the folders: hubpipe's cache folder and code version."""
    _count(ctx)
    return StageResult(results={"cache_root": str(ctx.cache_root), "code_version": ctx.code_version})


def reject(ctx: StageContext) -> StageResult:
    _count(ctx)
    (ctx.output_dir / "anomalies.txt").write_text("class 'x' missing")
    return StageResult(results={"anomalies": 1}, artifacts={"anomalies": "anomalies.txt"}, rejected="class 'x' missing")


def reject_with_report(ctx: StageContext) -> StageResult:
    _count(ctx)
    (ctx.output_dir / "report.html").write_text("<p>class 'x' missing</p>")
    return StageResult(results={}, artifacts={"report": "report.html"}, rejected="class 'x' missing")


def fail(ctx: StageContext) -> StageResult:
    _count(ctx)
    raise RuntimeError("boom")


def external(config, inputs, previous_dir) -> dict:
    return {"marker": os.environ.get("FAKE_EXTERNAL", "")}


MODULE = "fake_stages"
CODE = ("hubpipe.pipeline.core.stage",)
CHAIN = (
    StageSpec("ingest", f"{MODULE}:write_value", sections=("data",), code=CODE, external_inputs=f"{MODULE}:external"),
    StageSpec("validate", f"{MODULE}:write_value", upstream=("ingest",), sections=("validate",), code=CODE),
    StageSpec("train", f"{MODULE}:write_value", upstream=("validate",), sections=("train",), code=CODE),
)


def refuse_unless_allowed(config) -> None:
    """A preflight check: refuses a run whose train.backbones holds ``forbidden``."""
    from hubpipe.pipeline.core.errors import UsageError

    if "forbidden" in config.train.backbones:
        raise UsageError("backbone forbidden is refused")
