"""The report's small HTML pieces: numbers, status pills, inline images and the note for a stage that did not run."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from hubpipe.components.common.html_parts import escape
from hubpipe.pipeline.run_results import RunFolder


def number(value: Any, digits: int = 4) -> str:
    """A float with ``digits`` decimals, None as "-", anything else escaped as it is."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(value)


def pill(text: str, kind: str) -> str:
    return f'<span class="pill {kind}">{escape(text)}</span>'


def image(path: Path, alt: str) -> str:
    """A PNG file inline, as a data URI."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def not_run(stage: str, run: RunFolder) -> str:
    """The note of a stage without a complete folder, with its status and error from run.json."""
    record = run.record(stage)
    status = record.get("status") or "not run"
    error = f": {escape(record['error'])}" if record.get("error") else ""
    return f'<p class="muted">The {stage} stage has no results in this folder ({escape(status)}{error}).</p>'
