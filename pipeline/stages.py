"""The pipeline's stages as data: the DAG both runners execute.

Each entry names its executor lazily (``module:function``); see :mod:`hubpipe.pipeline.core.stage`.
"""

from __future__ import annotations

from hubpipe.pipeline.core.stage import StageSpec

PACKAGE = "hubpipe.components"
COMMON_CODE = (f"{PACKAGE}.common",)
#: Evaluate and publish both read the publish root: its check, from the shared library.
PUBLISH_ROOT_CHECK = f"{PACKAGE}.common.publish_root:preflight"


def stage_of_package(
    name: str, upstream: tuple[str, ...] = (), sections: tuple[str, ...] = (), code: tuple[str, ...] = (), **refs: str
) -> StageSpec:
    """The stage of ``components/<name>/``: its executor is ``executor:run`` there, its code that package, the
    shared ``common`` one and ``code``; ``refs`` (``external_inputs``, ``preflight``) are relative to the
    package unless they name a module in full."""
    package = f"{PACKAGE}.{name}"
    return StageSpec(
        name=name,
        executor=f"{package}.executor:run",
        upstream=upstream,
        sections=sections,
        code=(package, *code, *COMMON_CODE),
        **{key: ref if ref.startswith(f"{PACKAGE}.") else f"{package}.{ref}" for key, ref in refs.items()},
    )


INGEST_STAGE = stage_of_package(
    "ingest", sections=("data",), external_inputs="sources:source_fingerprint", preflight="sources:preflight"
)
VALIDATE_STAGE = stage_of_package("validate", upstream=("ingest",), sections=("validate", "data"))
TRAIN_STAGE = stage_of_package(
    "train",
    upstream=("ingest", "validate"),
    sections=("train", "data"),
    code=(f"{PACKAGE}.backbones",),
    external_inputs="executor:external_inputs",
    preflight="executor:preflight",
)
EVALUATE_STAGE = stage_of_package(
    "evaluate",
    upstream=("ingest", "train"),
    sections=("evaluate", "publish"),
    external_inputs="executor:external_inputs",
    preflight=PUBLISH_ROOT_CHECK,
)
PUBLISH_STAGE = stage_of_package(
    "publish",
    upstream=("evaluate", "train"),
    sections=("publish",),
    external_inputs="executor:external_inputs",
    preflight=PUBLISH_ROOT_CHECK,
)

STAGE_SPECS: tuple[StageSpec, ...] = (INGEST_STAGE, VALIDATE_STAGE, TRAIN_STAGE, EVALUATE_STAGE, PUBLISH_STAGE)


def registered_stages() -> list[StageSpec]:
    """The stages of a full run, in execution order."""
    return list(STAGE_SPECS)


def stage_names() -> list[str]:
    """The one list of stage names, in execution order (``--until``, the run report, the layer tests)."""
    return [stage.name for stage in STAGE_SPECS]
