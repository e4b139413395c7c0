"""``hubpipe run``: run the pipeline locally (data stages on Beam's DirectRunner by default)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hubpipe.pipeline.commands.options import config_options
from hubpipe.pipeline.core.config import PipelineConfig, replace
from hubpipe.pipeline.core.run_folder import DEFAULT_OUTPUT
from hubpipe.pipeline.stages import stage_names


def _format_results(results: dict) -> str:
    shown = {key: value for key, value in results.items() if not isinstance(value, (dict, list))}
    return json.dumps(shown, ensure_ascii=False)[1:-1] if shown else ""


@click.command()
@config_options
@click.option(
    "--output",
    "output_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_OUTPUT,
    show_default=True,
    help="Run folder: artifacts, run.json, resolved_config.yaml. Rerunning into the "
    "same folder skips unchanged stages.",
)
@click.option("--until", type=click.Choice(stage_names()), help="Stop after this stage, e.g. --until validate.")
@click.option("--no-cache", is_flag=True, help="Rerun every stage even if its inputs are unchanged.")
@click.option(
    "--force-output",
    is_flag=True,
    help="Run into an --output folder that is not empty and is not a run folder (refused otherwise); "
    "hubpipe then claims it, and still removes only the temporaries it creates itself.",
)
def run(config: PipelineConfig, output_dir: Path, until: str | None, no_cache: bool, force_output: bool) -> None:
    """Run the pipeline locally: ingest, validate, train, evaluate, publish.

    With no arguments it runs on the embedded sample dataset with the offline backbone.
    """
    from hubpipe.pipeline.local_runner import run_pipeline

    if no_cache:
        config = replace(config, runner=replace(config.runner, cache=False))
    report = run_pipeline(config, output_dir, until=until, force_output=force_output)
    for record in report.stages:
        click.echo(f"{record.name:<9} {record.status:<7} {record.duration_s:7.1f} s  {_format_results(record.results)}")
    click.echo(f"run folder: {report.output_dir} (see run.json)")
    if report.publish_root:
        click.echo(report.publish_root)
