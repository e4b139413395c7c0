"""``hubpipe report``: a self-contained HTML report of a run folder."""

from __future__ import annotations

from pathlib import Path

import click

from hubpipe.pipeline.core.errors import UsageError
from hubpipe.pipeline.core.run_folder import RUN_FILE
from hubpipe.pipeline.report.page import REPORT_FILE, write_report
from hubpipe.pipeline.run_results import RunFolder


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Where to write the report. Default: RUN_DIR/{REPORT_FILE}.",
)
def report(run_dir: Path, output: Path | None) -> None:
    """Write an HTML report of the run in RUN_DIR: data statistics and anomalies, quarantined files,
    the model comparison, confusion matrices and the blessing decision, and what was published.

    One file with everything inside (no scripts, nothing loaded from the web). Stages that did not run
    are reported as such.
    """
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir} is not a folder")
    if not RunFolder(run_dir).has_results():
        raise UsageError(f"{run_dir} is not a run folder (no {RUN_FILE}); pass the --output folder of `hubpipe run`")
    written = write_report(run_dir, output or run_dir / REPORT_FILE)
    click.echo(f"wrote {written}")
