"""The pipeline parameters: the settings a Kubeflow run can change without recompiling.

Every compiled pipeline has one parameter ``config`` (the whole resolved configuration as a JSON string, from
the ``--config`` file and flags given to ``hubpipe compile``) and the named parameters below, whose defaults are
taken from that configuration and which override it. A component receives ``config`` and only the named
parameters of the settings its stage reads, so that changing, say, ``epochs`` leaves the cached data stages
valid.

The named parameters are the settings that declare a ``parameter`` name in the configuration tree
(:func:`~hubpipe.pipeline.core.config.setting`), with its help text as their description. ``config`` is a
string, not a struct: KFP keeps a struct's numbers as floats (``epochs: 5.0`` in its UI); JSON keeps integers.
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hubpipe.pipeline.core.config import PipelineConfig, apply_overrides, from_dict, setting_of, settings, to_dict
from hubpipe.pipeline.core.errors import ConfigError

#: Name of the parameter that carries the whole configuration.
CONFIG_PARAMETER = "config"
CONFIG_DESCRIPTION = "The whole configuration as JSON (hubpipe config show); the other parameters override it."


@dataclass(frozen=True)
class PipelineParameter:
    """A pipeline parameter bound to one setting (``key``, dotted) of the configuration."""

    name: str
    key: str
    description: str


PARAMETERS: tuple[PipelineParameter, ...] = tuple(
    PipelineParameter(item.parameter, item.key, item.help) for item in settings() if item.parameter
)

BY_NAME: dict[str, PipelineParameter] = {parameter.name: parameter for parameter in PARAMETERS}


def parameter_type(parameter: PipelineParameter) -> type:
    """The KFP parameter type: ``list`` for tuples, else the setting's own type (str, int, float, bool)."""
    tp = setting_of(parameter.key).type
    return list if typing.get_origin(tp) is tuple else tp


def default_values(config: PipelineConfig) -> dict[str, Any]:
    """Each named parameter's default: its value in ``config`` (tuples as lists); plus ``config`` itself (JSON)."""
    data = to_dict(config)
    values: dict[str, Any] = {CONFIG_PARAMETER: json.dumps(data)}
    for parameter in PARAMETERS:
        node: Any = data
        for part in parameter.key.split("."):
            node = node[part]
        values[parameter.name] = node
    return values


def resolve_config(config: str | Mapping[str, Any], values: Mapping[str, Any]) -> PipelineConfig:
    """The configuration a component runs with: ``config`` (JSON; a mapping from pipelines compiled before it was
    a string) overridden by the named parameters it received."""
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError as exc:
            raise ConfigError(f"the pipeline parameter {CONFIG_PARAMETER} is not JSON: {exc}") from None
    unknown = sorted(set(values) - set(BY_NAME))
    if unknown:
        raise ConfigError(f"unknown pipeline parameter {unknown[0]} (known: {', '.join(BY_NAME)})")
    overrides = {BY_NAME[name].key: value for name, value in values.items()}
    return apply_overrides(from_dict(config), overrides)


def description(name: str) -> str:
    """The description of the pipeline parameter ``name``: its setting's help text (as ``hubpipe run --help``
    shows it for a setting with a flag)."""
    return CONFIG_DESCRIPTION if name == CONFIG_PARAMETER else BY_NAME[name].description


def document_parameters(function: Callable[..., Any]) -> Callable[..., Any]:
    """Puts the description of each pipeline parameter ``function`` takes first under its docstring's ``Args:``
    (a component shell documents only its artifacts); KFP shows them in its UI. Returns ``function``."""
    doc = inspect.getdoc(function) or ""
    head, _, artifacts = doc.partition("Args:\n")
    names = [name for name in inspect.signature(function).parameters if name == CONFIG_PARAMETER or name in BY_NAME]
    lines = [f"    {name}: {description(name)}" for name in names]
    function.__doc__ = f"{head.rstrip()}\n\nArgs:\n" + "\n".join(lines) + ("\n" + artifacts if artifacts else "\n")
    return function
