"""Stand-ins for the ingest and train stages in runner tests: they copy a hand-built world's folders.

``FAKE_INGEST`` and ``FAKE_TRAIN`` name the folders to copy; changing ``FAKE_TRAIN`` is a new training.
``FAKE_CACHE`` names a vector store whose contents the fake train stage copies into the configured one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from hubpipe.components.common import publish_root
from hubpipe.components.common.publish_root import PublishedVersion
from hubpipe.components.common.vector_store import store_location
from hubpipe.pipeline.core.stage import StageContext, StageResult, StageSpec


def published_latest(root: str) -> PublishedVersion | None:
    """The complete version LATEST names in the publish root, or None."""
    latest = publish_root.read_latest_id(root)
    return publish_root.read_version(root, latest) if latest else None


def _copy_into(source: Path, target: Path) -> None:
    shutil.copytree(source, target, dirs_exist_ok=True)


def ingest(ctx: StageContext) -> StageResult:
    _copy_into(Path(os.environ["FAKE_INGEST"]), ctx.output_dir)
    return StageResult(results={"copied": os.environ["FAKE_INGEST"]})


def train(ctx: StageContext) -> StageResult:
    _copy_into(Path(os.environ["FAKE_TRAIN"]), ctx.output_dir)
    # the vector store, as the real stage fills it
    _copy_into(Path(os.environ["FAKE_CACHE"]), Path(store_location(ctx.config.train.vector_store)))
    return StageResult(results={"copied": os.environ["FAKE_TRAIN"]})


def ingest_source(config, inputs, previous_dir) -> dict:
    return {"source": os.environ.get("FAKE_INGEST", "")}


def train_source(config, inputs, previous_dir) -> dict:
    return {"train": os.environ.get("FAKE_TRAIN", "")}


def stages() -> list[StageSpec]:
    """Fake ingest and train, then the real evaluate and publish stages as registered."""
    from hubpipe.pipeline.stages import registered_stages

    real = {stage.name: stage for stage in registered_stages()}
    code = ("hubpipe.pipeline.core.stage",)
    return [
        StageSpec("ingest", f"{__name__}:ingest", code=code, external_inputs=f"{__name__}:ingest_source"),
        StageSpec(
            "train", f"{__name__}:train", upstream=("ingest",), code=code, external_inputs=f"{__name__}:train_source"
        ),
        real["evaluate"],
        real["publish"],
    ]
