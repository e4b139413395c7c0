"""Command-line options shared by the commands that build a pipeline configuration."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hubpipe.pipeline.config import PipelineConfig, load_config, shown
from hubpipe.pipeline.errors import ConfigError

DEFAULT_OUTPUT = "hubpipe-output"


def _parse_set(items: tuple[str, ...]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects SECTION.KEY=VALUE, got {shown(item)}")
        overrides[key.strip()] = value
    return overrides


def config_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds the configuration flags; the command receives ``config: PipelineConfig`` instead of them."""

    @click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="YAML configuration file (see `hubpipe config show` for every setting).",
    )
    @click.option(
        "--data",
        "data_source",
        metavar="SOURCE",
        help="Images: a directory, a .zip/.tar[.gz] path or URL, a gs:// path, a preset "
        "(food101_10pct) or 'sample' (the embedded default).",
    )
    @click.option(
        "--backbone",
        "backbones",
        multiple=True,
        metavar="NAME",
        help="Backbone preset or TF Hub handle / SavedModel path; repeat for several.",
    )
    @click.option("--epochs", type=int, help="Training epochs of each classifier head.")
    @click.option("--percent", type=float, help="Keep this percentage of each class's training images.")
    @click.option(
        "--beam-arg",
        "beam_args",
        multiple=True,
        metavar="ARG",
        help="Beam pipeline option, e.g. --beam-arg=--direct_num_workers=2; repeatable.",
    )
    @click.option(
        "--set",
        "settings",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override any setting, e.g. --set train.batch_size=16; repeatable.",
    )
    @functools.wraps(command)
    def wrapper(
        *args: Any,
        config_file: Path | None,
        data_source: str | None,
        backbones: tuple[str, ...],
        epochs: int | None,
        percent: float | None,
        beam_args: tuple[str, ...],
        settings: tuple[str, ...],
        **kwargs: Any,
    ) -> Any:
        overrides: dict[str, Any] = _parse_set(settings)
        if data_source is not None:
            overrides["data.source"] = data_source
        if backbones:
            overrides["train.backbones"] = list(backbones)
        if epochs is not None:
            overrides["train.epochs"] = epochs
        if percent is not None:
            overrides["data.percent"] = percent
        if beam_args:
            overrides["runner.beam_args"] = list(beam_args)
        config: PipelineConfig = load_config(config_file, overrides)
        return command(*args, config=config, **kwargs)

    return wrapper
