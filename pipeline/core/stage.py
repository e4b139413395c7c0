"""What a stage is to the runners: a spec that is pure data, and the context its executor receives.

An executor is a function ``run(ctx: StageContext) -> StageResult`` that reads only ``ctx.inputs`` (the
artifact folders of its upstream stages) and writes only into ``ctx.output_dir`` (and the caches the context
names). It reads no environment: the runner decides the folders. The local runner and the Kubeflow components
call the same executors.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubpipe.pipeline.core.config import PipelineConfig

#: Key results of a stage (small, JSON-serialisable): they go into run.json and the stage manifest.
Results = dict[str, Any]


@dataclass(frozen=True)
class StageContext:
    """Everything an executor may use."""

    name: str
    config: PipelineConfig
    inputs: Mapping[str, Path]  # upstream stage name -> its committed artifact folder
    output_dir: Path  # an empty folder; becomes the stage's artifact folder when the executor returns
    cache_dir: Path  # shared across runs of the same output folder (e.g. embedding caches)
    cache_root: Path  # hubpipe's cache folder, shared by every run on the machine (downloads, conversions)
    code_version: str  # the stage's code version, as in its fingerprint
    previous_dir: Path | None = None  # this stage's artifact folder from the previous run, if any
    beam_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class StageResult:
    """What an executor returns.

    ``artifacts`` maps names to paths relative to the output folder. ``rejected`` is set when the stage
    finished its work but its policy stops the pipeline (e.g. validation anomalies with policy ``fail``):
    the artifacts are kept and the run ends with exit code 3.
    """

    results: Results = field(default_factory=dict)
    artifacts: Mapping[str, str] = field(default_factory=dict)
    rejected: str | None = None


@dataclass(frozen=True)
class DataOutcome:
    """What a data stage's core (ingest, validate) returns: its key results, and ``rejected`` when its policy
    stops the run. Like the outcomes of train, evaluate and publish it offers ``results()``; the executor adds
    the artifacts from the stage's layout.
    """

    key_results: Results
    rejected: str | None = None

    def results(self) -> Results:
        return dict(self.key_results)


Executor = Callable[[StageContext], StageResult]
ExternalInputs = Callable[[PipelineConfig, Mapping[str, Path], "Path | None"], Mapping[str, Any]]
Preflight = Callable[[PipelineConfig], None]


@dataclass(frozen=True)
class StageSpec:
    """A stage as data: its name, what it depends on and what determines its output.

    ``executor`` and ``external_inputs`` are ``"module:function"`` references, imported only when the
    stage actually runs, so that building the DAG imports nothing heavy. ``external_inputs(config, inputs,
    previous_dir)`` (with ``inputs`` and ``previous_dir`` as in :class:`StageContext`) returns what the stage
    reads besides its upstream artifacts (the data source, the last blessed model), for the
    fingerprint. ``code`` names the packages whose source is the stage's code version.
    ``preflight(config)`` checks, cheaply and before any stage of the run starts, what would make the stage fail
    on the configuration alone (an unknown backbone, an unsupported URI scheme); it raises a one-line error.
    """

    name: str
    executor: str
    upstream: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()
    code: tuple[str, ...] = ()
    external_inputs: str = ""
    preflight: str = ""

    def load_executor(self) -> Executor:
        return _load(self.executor)

    def load_external_inputs(self) -> ExternalInputs | None:
        return _load(self.external_inputs) if self.external_inputs else None

    def load_preflight(self) -> Preflight | None:
        return _load(self.preflight) if self.preflight else None


def _load(reference: str) -> Any:
    module_name, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module_name), attribute)
