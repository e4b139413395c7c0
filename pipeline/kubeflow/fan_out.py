"""The train stage fanned out on Kubeflow: one task per backbone, one for the from-scratch baseline, then a
task that collects their folders into the one folder evaluate and publish read.

Why at compile time: kfp.local in kfp 2.13 raises NotImplementedError for ``dsl.ParallelFor``, and a KFP task's
artifact inputs are fixed in the compiled pipeline, so the tasks are decided by ``hubpipe compile`` from
``train.backbones`` and ``train.baseline``. Each task runs the ordinary train stage with the backbone list
narrowed to its own backbone (the baseline on only in the baseline's task): :func:`narrow_to_part`. The
backbones are therefore not a pipeline parameter; a run whose ``config`` parameter names other backbones (or
turns the baseline on or off) stops with one line that says to compile again.

The collect task's component has one artifact input per task, so its function is written for the compiled
parts: :func:`define_function` (KFP embeds a lightweight component's source in the pipeline, and finds its
inputs in its signature; ``Input[List[...]]`` is only fed by ``dsl.Collected`` inside a ParallelFor).
This module imports neither kfp nor TensorFlow.
"""

from __future__ import annotations

import dataclasses
import hashlib
import keyword
import linecache
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hubpipe.pipeline.core.config import PipelineConfig, TrainConfig
from hubpipe.pipeline.core.errors import UsageError


@dataclass(frozen=True)
class TrainPart:
    """What one train task trains: ``model`` names it (the model its backbone gives, or the baseline's)."""

    model: str
    backbones: tuple[str, ...]
    baseline: bool

    def argument(self, train: TrainConfig) -> dict[str, Any]:
        """The task's ``part`` input: what it trains, and what the whole pipeline was compiled for."""
        return {
            "model": self.model,
            "backbones": list(self.backbones),
            "baseline": self.baseline,
            "compiled_backbones": list(train.backbones),
            "compiled_baseline": train.baseline,
        }


def train_parts(train: TrainConfig) -> list[TrainPart]:
    """One part per backbone, in the configured order, then the baseline's when ``train.baseline`` is on.

    Each task names its model as a train stage with that one backbone does; when two backbones would give the
    same name (two folders both called ``model``), a single stage tells them apart by a suffix but separate
    tasks cannot, so that is a one-line error.
    """
    from hubpipe.components.backbones.registry import resolve_backbone
    from hubpipe.components.train.naming import SCRATCH_MODEL, unique_model_names

    resolved = [resolve_backbone(backbone).name for backbone in train.backbones]
    together = unique_model_names(resolved)
    alone = [unique_model_names([name])[0] for name in resolved]
    for backbone, name, own in zip(train.backbones, together, alone, strict=True):
        if name != own:
            raise UsageError(
                f"backbone {backbone} would train a model named {own} like an earlier backbone; on Kubeflow each "
                "backbone trains in its own task, so their models need distinct names: rename its folder"
            )
    parts = [TrainPart(name, (backbone,), False) for backbone, name in zip(train.backbones, alone, strict=True)]
    return parts + ([TrainPart(SCRATCH_MODEL, (), True)] if train.baseline else [])


def narrow_to_part(config: PipelineConfig, part: Mapping[str, Any]) -> PipelineConfig:
    """``config`` as one train task runs it: only the part's backbones, and the baseline only in its task.

    The configuration must ask for the backbones and baseline the pipeline was compiled for (the ``config``
    parameter can be edited when a run is submitted); otherwise a one-line :class:`UsageError`. The narrowed
    configuration may name no backbone at all (the baseline's task), which a user's configuration may not.
    """
    compiled = (tuple(part["compiled_backbones"]), bool(part["compiled_baseline"]))
    asked = (tuple(config.train.backbones), config.train.baseline)
    if asked != compiled:
        raise UsageError(
            f"this pipeline was compiled with one train task per backbone for {_described(*compiled)}, but the "
            f"run's configuration asks for {_described(*asked)}; compile it again with those backbones "
            "(hubpipe compile --backbone NAME ...)"
        )
    train = dataclasses.replace(config.train, backbones=tuple(part["backbones"]), baseline=bool(part["baseline"]))
    return dataclasses.replace(config, train=train)


def _described(backbones: tuple[str, ...], baseline: bool) -> str:
    names = ", ".join(backbones) or "no backbone"
    return f"{names} {'with' if baseline else 'without'} the from-scratch baseline"


#: Names a part's input may not take: the other parameters and outputs of the collect component.
RESERVED_INPUTS = frozenset({"config", "model", "report", "summary", "metrics", "mlpipeline_ui_metadata"})


def input_names(parts: Sequence[str]) -> list[str]:
    """A component input name per part: the part's name when it is a plain identifier, else ``part_<i>``."""
    names: list[str] = []
    for index, part in enumerate(parts, start=1):
        candidate = part.replace("-", "_").replace(".", "_")
        usable = candidate.isidentifier() and not keyword.iskeyword(candidate)
        free = candidate not in RESERVED_INPUTS and candidate not in names
        names.append(candidate if usable and free else f"part_{index}")
    return names


def define_function(name: str, source: str, namespace: Mapping[str, Any]) -> Callable[..., Any]:
    """The function ``name`` defined by ``source`` (one ``def``), with ``namespace`` as its globals.

    The source is registered with :mod:`linecache` under a name of its own, so that ``inspect.getsource``
    (which KFP uses to embed a lightweight component's code in the pipeline) returns it.
    """
    filename = f"<hubpipe generated {name} {hashlib.sha256(source.encode()).hexdigest()[:12]}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    scope = dict(namespace)
    exec(compile(source, filename, "exec", dont_inherit=True), scope)  # the source is hubpipe's own template
    return scope[name]
