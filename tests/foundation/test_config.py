"""Configuration: defaults, YAML, overrides, validation messages, round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubpipe.pipeline.config import PipelineConfig, from_dict, load_config, to_dict, to_yaml
from hubpipe.pipeline.errors import ConfigError


def test_defaults_are_valid_and_frozen() -> None:
    config = load_config()
    assert config == PipelineConfig()
    assert config.data.source == "sample"
    assert config.train.backbones == ("efficientnet_lite0",)
    with pytest.raises(AttributeError):
        config.train.epochs = 3  # type: ignore[misc]


def test_yaml_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 3\n  backbones: [mobilenetv2, resnet50v2]\ndata:\n  percent: 10\n")
    config = load_config(path, {"train.epochs": "7", "validate.policy": "warn"})
    assert config.train.epochs == 7
    assert config.train.backbones == ("mobilenetv2", "resnet50v2")
    assert config.data.percent == 10.0
    assert config.validate.policy == "warn"


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    config = load_config(overrides={"train.backbones": "a,b", "runner.beam_args": ["--direct_num_workers=2"]})
    path = tmp_path / "resolved.yaml"
    path.write_text(to_yaml(config))
    assert load_config(path) == config
    assert to_dict(config)["train"]["backbones"] == ["a", "b"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"train": {"epochs": 0}}, "train.epochs must be between 1 and 1000, got 0"),
        ({"train": {"epochs": "many"}}, "train.epochs: expected an integer, got 'many'"),
        ({"train": {"epochs": 2.5}}, "train.epochs: expected an integer, got 2.5"),
        ({"data": {"percent": 150}}, r"data.percent must be in \(0, 100\], got 150"),
        ({"data": {"leakage": "ignore"}}, "data.leakage must be one of keep, drop, fail, got 'ignore'"),
        ({"validate": {"policy": "maybe"}}, "validate.policy must be one of fail, warn"),
        ({"train": {"backbones": []}}, "train.backbones must name at least one backbone"),
        ({"train": {"backbones": ["a", "a"]}}, "lists a backbone twice"),
        ({"train": {"augment": "perhaps"}}, "train.augment: expected true or false"),
        ({"trian": {}}, "unknown setting trian"),
        ({"train": {"epoch": 3}}, r"unknown setting train.epoch \(known in train: "),
        ({"train": 5}, "train: expected a mapping"),
    ],
)
def test_bad_values_give_one_readable_line(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        from_dict(data)
    assert "\n" not in str(info.value)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(scalar)


def test_unknown_override() -> None:
    with pytest.raises(ConfigError, match=r"unknown setting train\.nope"):
        load_config(overrides={"train.nope": 1})
