"""Configuration: defaults, YAML, overrides, validation messages, round trip."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hubpipe.pipeline.core.config import (
    MAX_CONFIG_VALUES,
    MAX_SHOWN_CHARS,
    PipelineConfig,
    expanded_size,
    from_dict,
    load_config,
    shown,
    to_dict,
    to_yaml,
)
from hubpipe.pipeline.core.errors import ConfigError


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
        ({"evaluate": {"rule": "bootstrap"}}, "evaluate.rule must be one of interval, point, got 'bootstrap'"),
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


def alias_bomb(setting: str, levels: int = 9) -> str:
    """A config of a few hundred bytes whose ``setting`` (``train.seed`` or ``train.backbones``) stands for
    9**levels values once its aliases are expanded (issue 22's report used 9 levels: 80 s and 4.4 GB)."""
    section, key = setting.split(".")
    rows = ["      - &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    rows += [f"      - &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, levels)]
    if key == "backbones":  # the bomb is the first backbone: a list of lists
        return f"{section}:\n  {key}:\n    -\n" + "\n".join(rows) + "\n"
    return f"{section}:\n  {key}:\n" + "\n".join(row[2:] for row in rows) + "\n"


def hubpipe_limited(*args: str) -> subprocess.CompletedProcess:
    """``hubpipe ARGS`` in a child with 2 GB of address space and 60 s, so that old code fails instead of
    taking the machine's memory."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    command = [sys.executable, "-m", "hubpipe.pipeline.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60, preexec_fn=limit)


@pytest.mark.parametrize("setting", ["train.seed", "train.backbones"])
def test_an_alias_bomb_is_refused_in_one_line(tmp_path: Path, setting: str) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(setting))
    assert len(path.read_bytes()) < 700
    result = hubpipe_limited("config", "show", "--config", str(path))
    assert result.returncode == 2, result.stderr[-500:]
    assert result.stderr.splitlines() == [
        f"error: config file {path} stands for more than {MAX_CONFIG_VALUES:,} values once its YAML aliases are "
        "expanded; a configuration needs far fewer"
    ]


def test_a_config_with_a_few_aliases_still_loads_and_one_that_contains_itself_does_not(tmp_path: Path) -> None:
    path = tmp_path / "aliases.yaml"
    path.write_text(
        "train:\n  epochs: &epochs 3\n  baseline_epochs: *epochs\n  backbones: &backbones [mobilenetv2, resnet50v2]\n"
        "runner:\n  beam_args: [&workers --direct_num_workers=2]\n"
    )
    config = load_config(path)
    assert (config.train.epochs, config.train.baseline_epochs) == (3, 3)
    assert config.train.backbones == ("mobilenetv2", "resnet50v2")
    path.write_text("train:\n  backbones: &loop [*loop]\n")
    with pytest.raises(ConfigError, match="once its YAML aliases are expanded"):
        load_config(path)
    # the root, "train", its mapping, "seed", the list, then lists of 10, 1 + 9 * 10, 1 + 9 * 91, 1 + 9 * 820 nodes
    assert expanded_size(yaml.compose(alias_bomb("train.seed", levels=4))) == 5 + 10 + 91 + 820 + 7381


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"validate:\n  policy: {'x' * 10_000}\n", "validate.policy must be one of fail, warn, got 'xxxx"),
        (f"train:\n  backbones: [[{', '.join(['b'] * 5000)}]]\n", r"train.backbones\[0\]: expected a string, got \["),
        (f"publish:\n  namespace: {'N' * 5000}\n", "publish.namespace must be a Kubernetes name"),
        (f"train:\n  epochs: {'9' * 5000}\n", "holds a value that cannot be read"),
        (f"train:\n  epochs: {'9' * 4000}\n", "train.epochs must be between 1 and 1000, got 9999"),
        (f"train:\n  {'k' * 1000}: 1\n", r"unknown setting train.'kkkk"),  # YAML's longest plain key
    ],
    ids=["long-string", "long-list", "long-name", "huge-integer", "long-integer", "long-key"],
)
def test_values_in_messages_are_cut_short(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "long.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert len(str(info.value)) < 400 and "\n" not in str(info.value)  # an unknown key lists the known ones


def test_shown_values_are_bounded() -> None:
    nested: list = ["x"]
    for _ in range(30):
        nested = [nested] * 9  # 9**30 elements if it were walked
    assert len(shown(nested)) <= MAX_SHOWN_CHARS
    assert shown("short") == "'short'"
    assert shown(10**5000) == "<an integer of 16610 bits>"
