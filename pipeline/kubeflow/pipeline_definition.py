"""The Kubeflow pipeline: one factory, :func:`create_pipeline`, that reads no environment.

One task per registered stage, in the order of the stage DAG. A stage's component comes from its thin shell
``components/<stage>/kfp_component.py`` (found beside the stage's executor), which provides:

* ``OUTPUT``: the name of the output that holds the stage's artifact folder; downstream components take
  it as an input of the same name (e.g. ingest's ``examples`` is train's ``examples``);
* ``component_function()``: the lightweight component function (typed ``Input[...]``/``Output[...]``
  artifacts and parameters; its body calls :func:`hubpipe.pipeline.kubeflow.launcher.launch`).

A component's other inputs are pipeline parameters of the same name (see :mod:`.parameters`). Every
component runs in the project's image with nothing installed at run time.

A shell may fan its stage out into several tasks decided when compiling (the train stage: one task per
backbone, see :mod:`.fan_out`); it then also provides:

* ``fan_out(config)``: each task's name and the constant inputs that say which part of the stage it runs;
* ``collect_function(names)``: the function of the component that takes every task's ``OUTPUT`` (one input per
  task, in order) and makes the stage's folder of them; downstream components take the collect task's output.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hubpipe.pipeline.core.config import PipelineConfig
from hubpipe.pipeline.core.errors import StageError
from hubpipe.pipeline.core.execution import topological_order
from hubpipe.pipeline.core.stage import StageSpec
from hubpipe.pipeline.kubeflow.options import KubeflowOptions, validate_options
from hubpipe.pipeline.kubeflow.parameters import (
    BY_NAME,
    CONFIG_PARAMETER,
    PARAMETERS,
    default_values,
    description,
    document_parameters,
    parameter_type,
)

COMPONENT_MODULE = "kfp_component"
#: The collect task of a fanned-out stage ``<stage>`` is ``<stage>: collect`` in the UI; its resources and pod
#: label are those of ``<stage>-collect``.
COLLECT_ROLE = "collect"
DESCRIPTION = "Transfer learning for image classification: ingest, validate, train, evaluate, publish."


class StageShell(Protocol):
    """What a stage's ``kfp_component`` module provides."""

    OUTPUT: str

    def component_function(self) -> Callable[..., None]: ...


def shell_module_name(spec: StageSpec) -> str:
    """``hubpipe.components.train.executor:run`` -> ``hubpipe.components.train.kfp_component``."""
    module = spec.executor.partition(":")[0]
    package = module.rpartition(".")[0]
    return f"{package}.{COMPONENT_MODULE}" if package else COMPONENT_MODULE


def load_shell(spec: StageSpec) -> StageShell:
    name = shell_module_name(spec)
    try:
        return importlib.import_module(name)  # type: ignore[return-value]
    except ModuleNotFoundError as exc:
        if not exc.name or not f"{name}.".startswith(f"{exc.name}."):  # a missing import inside the module
            raise
        raise StageError(f"stage {spec.name} has no Kubeflow component: {name} is missing") from None


def build_component(function: Callable[..., None], image: str) -> Any:
    """A shell's component function as a lightweight component in ``image``; nothing is pip-installed at run
    time."""
    from kfp import dsl

    function = document_parameters(function)
    return dsl.component(base_image=image, packages_to_install=[], install_kfp_package=False)(function)


@dataclass(frozen=True)
class FannedOut:
    """A stage that runs as one task per part, decided when compiling, and a task that collects them."""

    parts: list[tuple[str, dict[str, Any]]]  # each task's name and constant inputs, in order
    collector: Any  # the collect component: parameters and one folder input per part, in the parts' order

    @classmethod
    def of(cls, shell: Any, config: PipelineConfig, image: str) -> FannedOut | None:
        """The fan-out of ``shell``'s stage, or None when its stage runs as one task."""
        if not callable(getattr(shell, "fan_out", None)):
            return None
        parts = list(shell.fan_out(config))
        return cls(parts, build_component(shell.collect_function([name for name, _ in parts]), image))


def create_pipeline(
    config: PipelineConfig,
    options: KubeflowOptions,
    stages: Sequence[StageSpec],
    shells: Mapping[str, StageShell] | None = None,
) -> Any:
    """The pipeline (a kfp ``GraphComponent``) of ``stages``, with ``config`` as the parameters' defaults.

    ``shells`` maps stage names to their component shells; by default each is found beside its executor.
    """
    from kfp import dsl

    validate_options(options)
    ordered = topological_order(stages)
    shells = {spec.name: (shells or {}).get(spec.name) or load_shell(spec) for spec in ordered}
    components = {name: build_component(shell.component_function(), options.image) for name, shell in shells.items()}
    fanned = {name: fan for name, shell in shells.items() if (fan := FannedOut.of(shell, config, options.image))}
    every = [*components.values(), *(fan.collector for fan in fanned.values())]
    used = {name for component in every for name in component.component_spec.inputs}
    names = [CONFIG_PARAMETER, *(p.name for p in PARAMETERS if p.name in used)]

    def hubpipe_pipeline(*values: Any) -> None:
        wiring = _Wiring(shells, options, dict(zip(names, values, strict=True)))
        for spec in ordered:
            if spec.name in fanned:
                wiring.add_fanned_out(spec, components[spec.name], fanned[spec.name])
            else:
                wiring.add(spec, components[spec.name])

    hubpipe_pipeline.__signature__ = _signature(names, default_values(config))  # type: ignore[attr-defined]
    hubpipe_pipeline.__doc__ = _docstring(names)
    return dsl.pipeline(name=options.pipeline_name, description=DESCRIPTION)(hubpipe_pipeline)


@dataclass
class _Wiring:
    """The tasks of the pipeline being defined, added stage by stage in the order of the DAG."""

    shells: Mapping[str, StageShell]
    options: KubeflowOptions
    arguments: Mapping[str, Any]  # the pipeline's parameters by name
    tasks: dict[str, Any] = field(default_factory=dict)  # stage name -> the task whose output is its folder

    def add(self, spec: StageSpec, component: Any) -> None:
        inputs = self.inputs(spec, component)
        self.tasks[spec.name] = configure_task(component(**inputs), spec.name, self.options)

    def add_fanned_out(self, spec: StageSpec, component: Any, fanned: FannedOut) -> None:
        """A task per part, then the collect task, which stands for the stage downstream."""
        output = self.shells[spec.name].OUTPUT
        folders = []
        for name, constants in fanned.parts:
            task = component(**self.inputs(spec, component, constants))
            folders.append(
                configure_task(task, spec.name, self.options, display=f"{spec.name}: {name}").outputs[output]
            )
        declared = list(fanned.collector.component_spec.inputs)
        part_inputs = [name for name in declared if name not in self.arguments]
        if len(part_inputs) != len(folders):
            raise StageError(
                f"the collect component of stage {spec.name} takes {len(part_inputs)} folders, not {len(folders)}"
            )
        inputs = {name: self.arguments[name] for name in declared if name in self.arguments}
        task = fanned.collector(**inputs, **dict(zip(part_inputs, folders, strict=True)))
        role = f"{spec.name}-{COLLECT_ROLE}"
        self.tasks[spec.name] = configure_task(task, role, self.options, display=f"{spec.name}: {COLLECT_ROLE}")

    def inputs(self, spec: StageSpec, component: Any, constants: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The component's arguments: upstream stage folders by their output names, ``constants`` (a
        fanned-out task's part), the rest from parameters."""
        expected = set(component.component_spec.inputs)
        inputs = dict(constants or {})
        if set(inputs) - expected:
            raise StageError(f"the component of stage {spec.name} has no input {sorted(set(inputs) - expected)[0]}")
        for upstream in spec.upstream:
            output = self.shells[upstream].OUTPUT
            if output not in expected:
                raise StageError(f"the component of stage {spec.name} has no input {output} (the output of {upstream})")
            inputs[output] = self.tasks[upstream].outputs[output]
        for name in sorted(expected - set(inputs)):
            if name not in self.arguments:
                raise StageError(
                    f"the component of stage {spec.name} takes {name}: neither an upstream output nor a parameter"
                )
            inputs[name] = self.arguments[name]
        return inputs


def _signature(names: list[str], defaults: Mapping[str, Any]) -> inspect.Signature:
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return inspect.Signature(
        [
            inspect.Parameter(
                name,
                kind,
                default=defaults[name],
                annotation=str if name == CONFIG_PARAMETER else parameter_type(BY_NAME[name]),
            )
            for name in names
        ]
    )


def _docstring(names: list[str]) -> str:
    """The pipeline's description and, under Args, each parameter's (KFP shows them in its UI)."""
    return "\n".join([DESCRIPTION, "", "Args:", *(f"    {name}: {description(name)}" for name in names)])


#: Labels of every task pod: the NetworkPolicy of k8s/ selects hubpipe's pods by ``app.kubernetes.io/name``.
POD_LABELS = {"app.kubernetes.io/name": "hubpipe", "app.kubernetes.io/part-of": "hubpipe"}


def configure_task(task: Any, stage: str, options: KubeflowOptions, display: str = "") -> Any:
    """Display name (``display``, else ``stage``), pod labels, caching, resources, accelerator with its
    toleration, retries and the volume, all of them by ``stage`` (e.g. ``train``, or ``train-collect``).

    kfp-kubernetes 1.5 sets no security context on task pods; see the README (Kubernetes) for what applies.
    """
    from kfp import kubernetes

    resources = options.resources_for(stage)
    task.set_display_name(display or stage)
    for key, value in {**POD_LABELS, "app.kubernetes.io/component": stage}.items():
        kubernetes.add_pod_label(task, key, value)
    task.set_caching_options(options.caching)
    task.set_cpu_request(resources.cpu_request).set_cpu_limit(resources.cpu_limit)
    task.set_memory_request(resources.memory_request).set_memory_limit(resources.memory_limit)
    if options.accelerated(stage):
        task.set_accelerator_type(options.accelerator_type).set_accelerator_limit(options.accelerator_count)
        kubernetes.add_toleration(task, key=options.accelerator_type, operator="Exists", effect="NoSchedule")
    if options.retries and stage in options.retry_stages:
        task.set_retry(num_retries=options.retries, backoff_duration="30s", backoff_factor=2.0)
    if options.pvc_name:
        kubernetes.mount_pvc(task, pvc_name=options.pvc_name, mount_path=options.pvc_mount_path)
        task.set_env_variable("HUBPIPE_CACHE_DIR", options.cache_dir)
    return task
