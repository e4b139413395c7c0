"""Pipeline parameters: typed from the config tree, defaults from the config, overriding it in a component."""

from __future__ import annotations

import json

import pytest

from hubpipe.pipeline.core.config import load_config, to_dict
from hubpipe.pipeline.core.errors import ConfigError
from hubpipe.pipeline.kubeflow.parameters import (
    BY_NAME,
    CONFIG_PARAMETER,
    PARAMETERS,
    default_values,
    parameter_type,
    resolve_config,
)


def test_parameter_types_follow_the_config_tree() -> None:
    assert parameter_type(BY_NAME["backbones"]) is list
    assert parameter_type(BY_NAME["epochs"]) is int
    assert parameter_type(BY_NAME["percent"]) is float
    assert parameter_type(BY_NAME["data_source"]) is str
    assert all(parameter_type(p) in (str, int, float, bool, list) for p in PARAMETERS)


def test_defaults_come_from_the_config() -> None:
    config = load_config(overrides={"train.backbones": ["a", "b"], "evaluate.min_accuracy": 0.7})
    values = default_values(config)
    assert values["backbones"] == ["a", "b"]
    assert values["min_accuracy"] == 0.7
    assert json.loads(values[CONFIG_PARAMETER]) == to_dict(config)


def test_a_component_resolves_the_config_json_and_its_parameters() -> None:
    config = resolve_config(default_values(load_config(overrides={"train.epochs": 9}))[CONFIG_PARAMETER], {})
    assert config.train.epochs == 9
    whole = default_values(load_config())[CONFIG_PARAMETER]
    named = resolve_config(whole, {"run_name": "lite-sweep", "gate_rule": "point"})  # as a run submits them
    assert (named.run.name, named.evaluate.rule) == ("lite-sweep", "point")
    with pytest.raises(ConfigError, match="the pipeline parameter config is not JSON"):
        resolve_config("{not json", {})


def test_a_component_resolves_the_config_struct_of_an_older_pipeline_and_its_parameters() -> None:
    """KFP hands a struct's integers back as floats; the config tree coerces them."""
    struct = to_dict(load_config(overrides={"train.epochs": 9}))
    struct["train"]["batch_size"] = 16.0
    config = resolve_config(struct, {"epochs": 2.0, "backbones": ["x"], "percent": 50})
    assert (config.train.epochs, config.train.batch_size) == (2, 16)
    assert config.train.backbones == ("x",)
    assert config.data.percent == 50.0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epochz": 1}, "unknown pipeline parameter epochz"),
        ({"epochs": 2.5}, "train.epochs: expected an integer"),
        ({"percent": 0}, "data.percent must be in (0, 100]"),
    ],
)
def test_bad_parameter_values_are_config_errors(values: dict, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        resolve_config(to_dict(load_config()), values)
    assert message in str(raised.value)
