"""The pipeline parameters: the settings a Kubeflow run can change without recompiling.

Every compiled pipeline has one parameter ``config`` (the whole resolved configuration as a struct, from the
``--config`` file and flags given to ``hubpipe compile``) and the named parameters below, whose defaults are
taken from that configuration and which override it. A component receives ``config`` and only the named
parameters of the settings its stage reads, so that changing, say, ``epochs`` leaves the cached data stages
valid.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from hubpipe.pipeline.core.config import PipelineConfig, apply_overrides, from_dict, to_dict
from hubpipe.pipeline.core.errors import ConfigError

#: Name of the parameter that carries the whole configuration.
CONFIG_PARAMETER = "config"


@dataclass(frozen=True)
class PipelineParameter:
    """A pipeline parameter bound to one setting (``key``, dotted) of the configuration."""

    name: str
    key: str
    description: str


PARAMETERS: tuple[PipelineParameter, ...] = (
    PipelineParameter(
        "data_source", "data.source", "Images: a directory (e.g. on the mounted volume), an archive, gs://"
    ),
    PipelineParameter("percent", "data.percent", "Percentage of each class's training images to keep"),
    PipelineParameter("validation_policy", "validate.policy", "'fail' stops before training on anomalies; 'warn'"),
    PipelineParameter("drift_threshold", "validate.drift_threshold", "L-infinity drift allowed vs the previous run"),
    PipelineParameter("backbones", "train.backbones", "Backbones: presets, TF Hub handles or SavedModel paths"),
    PipelineParameter("epochs", "train.epochs", "Training epochs of each classifier head"),
    PipelineParameter("batch_size", "train.batch_size", "Training batch size"),
    PipelineParameter("learning_rate", "train.learning_rate", "Learning rate of the classifier heads"),
    PipelineParameter("fine_tune_layers", "train.fine_tune_layers", "Top backbone layers to fine-tune (0: off)"),
    PipelineParameter("min_accuracy", "evaluate.min_accuracy", "Test accuracy a candidate needs to be blessed"),
    PipelineParameter(
        "min_margin_over_baseline", "evaluate.min_margin_over_baseline", "Accuracy margin over the from-scratch CNN"
    ),
    PipelineParameter(
        "max_drop_vs_blessed", "evaluate.max_drop_vs_blessed", "Accuracy drop allowed vs the last blessed model"
    ),
    PipelineParameter("publish_root", "publish.root", "Where logs and blessed models are published (e.g. a PVC path)"),
    PipelineParameter(
        "mlflow_uri", "track.mlflow_uri", "MLflow tracking server (empty: $MLFLOW_TRACKING_URI, else none)"
    ),
)

BY_NAME: dict[str, PipelineParameter] = {parameter.name: parameter for parameter in PARAMETERS}


def _setting_type(key: str) -> Any:
    """The annotated type of a dotted setting, from the config dataclasses."""
    cls: Any = PipelineConfig
    *sections, leaf = key.split(".")
    for section in sections:
        cls = typing.get_type_hints(cls)[section]
    if not (is_dataclass(cls) and leaf in {f.name for f in fields(cls)}):
        raise ConfigError(f"unknown setting {key}")
    return typing.get_type_hints(cls)[leaf]


def parameter_type(parameter: PipelineParameter) -> type:
    """The KFP parameter type: ``list`` for tuples, else the setting's own type (str, int, float, bool)."""
    tp = _setting_type(parameter.key)
    return list if typing.get_origin(tp) is tuple else tp


def section_of(parameter: PipelineParameter) -> str:
    return parameter.key.split(".", 1)[0]


def parameters_for(sections: tuple[str, ...]) -> list[PipelineParameter]:
    """The named parameters that belong to the given config sections."""
    return [parameter for parameter in PARAMETERS if section_of(parameter) in sections]


def default_values(config: PipelineConfig) -> dict[str, Any]:
    """Each named parameter's default: its value in ``config`` (tuples as lists); plus ``config`` itself."""
    data = to_dict(config)
    values: dict[str, Any] = {CONFIG_PARAMETER: data}
    for parameter in PARAMETERS:
        node: Any = data
        for part in parameter.key.split("."):
            node = node[part]
        values[parameter.name] = node
    return values


def resolve_config(config: Mapping[str, Any], values: Mapping[str, Any]) -> PipelineConfig:
    """The configuration a component runs with: ``config`` overridden by the named parameters it received."""
    unknown = sorted(set(values) - set(BY_NAME))
    if unknown:
        raise ConfigError(f"unknown pipeline parameter {unknown[0]} (known: {', '.join(BY_NAME)})")
    overrides = {BY_NAME[name].key: value for name, value in values.items()}
    return apply_overrides(from_dict(config), overrides)
