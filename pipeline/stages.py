"""The pipeline's stages as data: the DAG both runners execute.

Each entry names its executor lazily (``module:function``); see :mod:`hubpipe.pipeline.stage`.
"""

from __future__ import annotations

from hubpipe.pipeline.stage import StageSpec

COMMON_CODE = ("hubpipe.components.common",)

STAGE_SPECS: tuple[StageSpec, ...] = ()


def registered_stages() -> list[StageSpec]:
    """The stages of a full run, in execution order."""
    return list(STAGE_SPECS)


def stage_names() -> list[str]:
    return [stage.name for stage in STAGE_SPECS]
