"""The Kubeflow pipeline: one factory, :func:`create_pipeline`, that reads no environment.

One task per registered stage, in the order of the stage DAG. A stage's component comes from its thin shell
``components/<stage>/kfp_component.py`` (found beside the stage's executor), which provides:

* ``OUTPUT``: the name of the output that holds the stage's artifact folder; downstream components take
  it as an input of the same name (e.g. ingest's ``examples`` is train's ``examples``);
* ``component_function()``: the lightweight component function (typed ``Input[...]``/``Output[...]``
  artifacts and parameters; its body calls :func:`hubpipe.pipeline.kubeflow.launcher.launch`).

A component's other inputs are pipeline parameters of the same name (see :mod:`.parameters`). Every
component runs in the project's image with nothing installed at run time.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
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


def build_component(shell: StageShell, image: str) -> Any:
    """The shell's function as a lightweight component in ``image``; nothing is pip-installed at run time."""
    from kfp import dsl

    function = document_parameters(shell.component_function())
    return dsl.component(base_image=image, packages_to_install=[], install_kfp_package=False)(function)


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
    components = {name: build_component(shell, options.image) for name, shell in shells.items()}
    used = {name for component in components.values() for name in component.component_spec.inputs}
    names = [CONFIG_PARAMETER, *(p.name for p in PARAMETERS if p.name in used)]

    def hubpipe_pipeline(*values: Any) -> None:
        arguments = dict(zip(names, values, strict=True))
        tasks: dict[str, Any] = {}
        for spec in ordered:
            inputs = _task_inputs(spec, components[spec.name], shells, tasks, arguments)
            tasks[spec.name] = configure_task(components[spec.name](**inputs), spec.name, options)

    hubpipe_pipeline.__signature__ = _signature(names, default_values(config))  # type: ignore[attr-defined]
    hubpipe_pipeline.__doc__ = _docstring(names)
    return dsl.pipeline(name=options.pipeline_name, description=DESCRIPTION)(hubpipe_pipeline)


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


def _task_inputs(
    spec: StageSpec,
    component: Any,
    shells: Mapping[str, StageShell],
    tasks: Mapping[str, Any],
    arguments: Mapping[str, Any],
) -> dict[str, Any]:
    """The component's arguments: upstream stage folders by their output names, the rest from parameters."""
    expected = set(component.component_spec.inputs)
    inputs: dict[str, Any] = {}
    for upstream in spec.upstream:
        output = shells[upstream].OUTPUT
        if output not in expected:
            raise StageError(f"the component of stage {spec.name} has no input {output} (the output of {upstream})")
        inputs[output] = tasks[upstream].outputs[output]
    for name in sorted(expected - set(inputs)):
        if name not in arguments:
            raise StageError(
                f"the component of stage {spec.name} takes {name}: neither an upstream output nor a parameter"
            )
        inputs[name] = arguments[name]
    return inputs


#: Labels of every task pod: the NetworkPolicy of k8s/ selects hubpipe's pods by ``app.kubernetes.io/name``.
POD_LABELS = {"app.kubernetes.io/name": "hubpipe", "app.kubernetes.io/part-of": "hubpipe"}


def configure_task(task: Any, stage: str, options: KubeflowOptions) -> Any:
    """Display name, pod labels, caching, resources, accelerator with its toleration, retries and the volume.

    kfp-kubernetes 1.5 sets no security context on task pods; see the README (Kubernetes) for what applies.
    """
    from kfp import kubernetes

    resources = options.resources_for(stage)
    task.set_display_name(stage)
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
