"""Stand-ins for the ingest and validate stages in train stage tests: they copy a prepared example folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from hubpipe.pipeline.core.stage import StageContext, StageResult, StageSpec


def copy_examples(ctx: StageContext) -> StageResult:
    shutil.copytree(Path(os.environ["TRAIN_TEST_INGEST"]), ctx.output_dir, dirs_exist_ok=True)
    return StageResult(artifacts={"examples": "examples"})


def accept(ctx: StageContext) -> StageResult:
    return StageResult(results={"anomalies": 0})


CODE = ("hubpipe.pipeline.core.stage",)
UPSTREAM = (
    StageSpec("ingest", "train_fake_upstream:copy_examples", sections=("data",), code=CODE),
    StageSpec("validate", "train_fake_upstream:accept", upstream=("ingest",), sections=("validate",), code=CODE),
)
