"""``hubpipe config``: inspect the resolved configuration."""

from __future__ import annotations

import click

from hubpipe.pipeline.commands.options import config_options
from hubpipe.pipeline.core.config import PipelineConfig, to_yaml


@click.group()
def config() -> None:
    """Inspect the pipeline configuration."""


@config.command("show")
@config_options
def show(config: PipelineConfig) -> None:
    """Print the resolved configuration (defaults < --config file < flags) as YAML."""
    click.echo(to_yaml(config), nl=False)
