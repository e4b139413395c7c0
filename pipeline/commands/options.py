"""Command-line options shared by the commands that build a pipeline configuration."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hubpipe.pipeline.core.config import PipelineConfig, load_config, shown
from hubpipe.pipeline.core.errors import ConfigError

DEFAULT_OUTPUT = "hubpipe-output"


def _parse_set(items: tuple[str, ...]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects SECTION.KEY=VALUE, got {shown(item)}")
        overrides[key.strip()] = value
    return overrides


_OPTIONS: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
    "config_file": click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="YAML configuration file (see `hubpipe config show` for every setting).",
    ),
    "data_source": click.option(
        "--data",
        "data_source",
        metavar="SOURCE",
        help="Images: a directory, a .zip/.tar[.gz] path or URL, a gs:// path, a preset "
        "(food101_10pct) or 'sample' (the embedded default).",
    ),
    "backbones": click.option(
        "--backbone",
        "backbones",
        multiple=True,
        metavar="NAME",
        help="Backbone preset or TF Hub handle / SavedModel path; repeat for several.",
    ),
    "epochs": click.option("--epochs", type=int, help="Training epochs of each classifier head."),
    "percent": click.option("--percent", type=float, help="Keep this percentage of each class's training images."),
    "beam_args": click.option(
        "--beam-arg",
        "beam_args",
        multiple=True,
        metavar="ARG",
        help="Beam pipeline option, e.g. --beam-arg=--direct_num_workers=2; repeatable.",
    ),
    "settings": click.option(
        "--set",
        "settings",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override any setting, e.g. --set train.batch_size=16; repeatable.",
    ),
}
#: Where each flag's value goes in the configuration (``--config`` and ``--set`` are read apart).
_SETTING_OF = {
    "data_source": "data.source",
    "backbones": "train.backbones",
    "epochs": "train.epochs",
    "percent": "data.percent",
    "beam_args": "runner.beam_args",
}


def config_flags(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Adds the configuration flags ``names`` (keys of ``_OPTIONS``; ``--config`` and ``--set`` always); the
    command receives ``config: PipelineConfig`` instead of them."""
    chosen = ["config_file", *names, "settings"]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in chosen}
            overrides: dict[str, Any] = _parse_set(values["settings"])
            for name, setting in _SETTING_OF.items():
                value = values.get(name)
                if value is not None and value != ():
                    overrides[setting] = list(value) if isinstance(value, tuple) else value
            config: PipelineConfig = load_config(values["config_file"], overrides)
            return command(*args, config=config, **kwargs)

        for name in reversed(chosen):
            wrapper = _OPTIONS[name](wrapper)
        return wrapper

    return decorate


#: Every configuration flag: ``run``, ``config show``, ``compile`` and ``submit`` take them all.
config_options = config_flags("data_source", "backbones", "epochs", "percent", "beam_args")
