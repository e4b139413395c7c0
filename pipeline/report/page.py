"""The run report as a page: one self-contained HTML file (inline CSS and images, no scripts, nothing fetched),
made of the sections in :data:`SECTIONS`, and the smaller fragment a notebook shows for a :class:`Run`.

A stage without a complete folder is reported as not run; what each section reads is in its module.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from hubpipe.components.common.html_parts import STYLE, escape, page
from hubpipe.pipeline.core.artifacts import write_text_atomic
from hubpipe.pipeline.report.evaluate import blessing_section
from hubpipe.pipeline.report.ingest import data_section
from hubpipe.pipeline.report.overview import overview_section
from hubpipe.pipeline.report.publish import publish_section
from hubpipe.pipeline.report.train import models_section
from hubpipe.pipeline.report.validate import validation_section
from hubpipe.pipeline.run_results import RunFolder

#: The report's file name in a run folder unless told otherwise (``hubpipe report``, MLflow tracking).
REPORT_FILE = "report.html"

Section = Callable[[RunFolder], str]
#: The report's sections, in order; a notebook's summary shows :data:`SUMMARY_SECTIONS`.
SECTIONS: tuple[Section, ...] = (
    overview_section,
    data_section,
    validation_section,
    models_section,
    blessing_section,
    publish_section,
)
SUMMARY_SECTIONS: tuple[Section, ...] = (overview_section, models_section, blessing_section)


def render_summary(run_dir: Path) -> str:
    """An HTML fragment for notebooks: the overview, the model comparison and the blessing, with a style
    scoped to the fragment (a notebook page keeps its own)."""
    run = RunFolder(run_dir)
    body = "".join(section(run) for section in SUMMARY_SECTIONS)
    scoped = "".join(f".hubpipe-run {rule}}}" for rule in STYLE.strip().split("}") if rule and "body{" not in rule)
    return f'<div class="hubpipe-run"><style>{scoped}</style>{body}</div>'


def render_report(run_dir: Path) -> str:
    """The report of ``run_dir`` as one HTML document."""
    run = RunFolder(run_dir)
    body = "".join(section(run) for section in SECTIONS)
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    title = f"hubpipe run report: {run.name}"
    heading = f"<h1>hubpipe run report: {escape(run.name)}</h1>"
    return page(title, f"{heading}<p class='muted'>written {created}</p>{body}")


def write_report(run_dir: Path, output: Path) -> Path:
    """Writes the report of ``run_dir`` to ``output`` (atomically) and returns ``output``."""
    write_text_atomic(output, render_report(run_dir))
    return output
