"""Command-line options shared by the commands that build a pipeline configuration.

The flags of settings (``--data``, ``--epochs``, ...) are generated from the configuration tree: each setting
that declares a ``flag`` (:func:`~hubpipe.pipeline.core.config.setting`) becomes an option with its help text.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hubpipe.pipeline.core.config import PipelineConfig, Setting, load_config, setting_of, settings, shown
from hubpipe.pipeline.core.errors import ConfigError

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
CONFIG_FILE_OPTION = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML configuration file (see `hubpipe config show` for every setting).",
)
SET_OPTION = click.option(
    "--set",
    "settings_",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override any setting, e.g. --set train.batch_size=16; repeatable.",
)


def _parse_set(items: tuple[str, ...]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects SECTION.KEY=VALUE, got {shown(item)}")
        overrides[key.strip()] = value
    return overrides


def destination(item: Setting) -> str:
    """The keyword argument click passes a setting's flag under (``train.epochs`` -> ``train__epochs``)."""
    return item.key.replace(".", "__")


def setting_option(item: Setting) -> Decorator:
    """The click option of a setting with a ``flag``: its help, its type, repeatable for a list."""
    repeated = typing.get_origin(item.type) is tuple
    value_type = typing.get_args(item.type)[0] if repeated else item.type
    return click.option(
        item.flag,
        destination(item),
        type=value_type,
        multiple=repeated,
        metavar=item.metavar or None,
        help=item.help,
    )


def flagged_settings() -> tuple[Setting, ...]:
    """The settings that have a command-line flag, in the tree's order."""
    return tuple(item for item in settings() if item.flag)


def config_flags(*keys: str) -> Decorator:
    """Adds the flags of the settings ``keys`` (dotted), ``--config`` and ``--set``; the command receives
    ``config: PipelineConfig`` instead of them."""
    chosen = [setting_of(key) for key in keys]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            config_file, items = kwargs.pop("config_file"), kwargs.pop("settings_")
            overrides: dict[str, Any] = _parse_set(items)
            for item in chosen:
                value = kwargs.pop(destination(item))
                if value is not None and value != ():
                    overrides[item.key] = list(value) if isinstance(value, tuple) else value
            config: PipelineConfig = load_config(config_file, overrides)
            return command(*args, config=config, **kwargs)

        wrapper = SET_OPTION(wrapper)
        for item in reversed(chosen):
            wrapper = setting_option(item)(wrapper)
        return CONFIG_FILE_OPTION(wrapper)

    return decorate


#: Every configuration flag: ``run``, ``config show``, ``compile`` and ``submit`` take them all.
config_options = config_flags(*(item.key for item in flagged_settings()))
