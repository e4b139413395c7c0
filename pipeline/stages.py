"""The pipeline's stages as data: the DAG both runners execute.

Each entry names its executor lazily (``module:function``); see :mod:`hubpipe.pipeline.stage`.
"""

from __future__ import annotations

from hubpipe.pipeline.stage import StageSpec

COMMON_CODE = ("hubpipe.components.common",)

INGEST_STAGE = StageSpec(
    name="ingest",
    executor="hubpipe.components.ingest.executor:run",
    sections=("data",),
    code=("hubpipe.components.ingest", *COMMON_CODE),
    external_inputs="hubpipe.components.ingest.sources:source_fingerprint",
    preflight="hubpipe.components.ingest.sources:preflight",
)

VALIDATE_STAGE = StageSpec(
    name="validate",
    executor="hubpipe.components.validate.executor:run",
    upstream=("ingest",),
    sections=("validate", "data"),
    code=("hubpipe.components.validate", *COMMON_CODE),
)

TRAIN_STAGE = StageSpec(
    name="train",
    executor="hubpipe.components.train.executor:run",
    upstream=("ingest", "validate"),
    sections=("train", "data"),
    code=("hubpipe.components.train", "hubpipe.components.backbones", *COMMON_CODE),
    external_inputs="hubpipe.components.train.executor:external_inputs",
    preflight="hubpipe.components.train.executor:preflight",
)

EVALUATE_STAGE = StageSpec(
    name="evaluate",
    executor="hubpipe.components.evaluate.executor:run",
    upstream=("ingest", "train"),
    sections=("evaluate", "publish"),
    code=("hubpipe.components.evaluate", "hubpipe.components.publish", *COMMON_CODE),
    external_inputs="hubpipe.components.evaluate.executor:external_inputs",
    preflight="hubpipe.components.publish.executor:preflight",
)

PUBLISH_STAGE = StageSpec(
    name="publish",
    executor="hubpipe.components.publish.executor:run",
    upstream=("evaluate", "train"),
    sections=("publish",),
    code=("hubpipe.components.publish", *COMMON_CODE),
    external_inputs="hubpipe.components.publish.executor:external_inputs",
    preflight="hubpipe.components.publish.executor:preflight",
)

STAGE_SPECS: tuple[StageSpec, ...] = (INGEST_STAGE, VALIDATE_STAGE, TRAIN_STAGE, EVALUATE_STAGE, PUBLISH_STAGE)


def registered_stages() -> list[StageSpec]:
    """The stages of a full run, in execution order."""
    return list(STAGE_SPECS)


def stage_names() -> list[str]:
    return [stage.name for stage in STAGE_SPECS]
