"""The report's data section (the ingest stage): source, examples per class, formats and the quarantine."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from hubpipe.components.common.html_parts import escape, quarantine_tables, table
from hubpipe.components.ingest import layout as ingest_layout
from hubpipe.pipeline.core.artifacts import read_json_checked
from hubpipe.pipeline.report.formatting import not_run
from hubpipe.pipeline.run_results import RunFolder

QUARANTINE_ROWS = 100
#: What is read from ingest's files (see :func:`~hubpipe.pipeline.core.artifacts.read_json_checked`).
QUARANTINE_SHAPE = [dict]
INGEST_SUMMARY_SHAPE = {"source": dict, "formats": dict, "per_class": {"*": {"*": (int, float)}}}


def data_section(run: RunFolder) -> str:
    ingest = run.stage(ingest_layout.STAGE)
    if ingest is None:
        return "<h2>Data</h2>" + not_run(ingest_layout.STAGE, run)
    summary = read_json_checked(ingest / ingest_layout.SUMMARY_FILE, INGEST_SUMMARY_SHAPE, {})
    source = summary.get("source") or {}
    facts = [
        ["source", escape(source.get("description") or source.get("location") or "?")],
        ["layout", escape(summary.get("layout", "?"))],
        [
            "examples (train / test)",
            f"{escape(summary.get('train_examples', '?'))} / {escape(summary.get('test_examples', '?'))}",
        ],
        ["classes", escape(summary.get("classes", "?"))],
        ["formats", escape(", ".join(f"{k}: {v}" for k, v in (summary.get("formats") or {}).items()) or "-")],
        ["transcoded at ingest", escape(summary.get("transcoded", 0))],
        ["held out by data.percent", escape(summary.get("held_out_by_percent", 0))],
    ]
    per_class = summary.get("per_class") or {}
    classes = (
        f"<details open><summary>Examples per class</summary>{_class_table(per_class)}</details>" if per_class else ""
    )
    return "<h2>Data</h2>" + table(["", ""], facts) + classes + "<h3>Quarantine</h3>" + _quarantine(ingest)


def _class_table(per_class: Mapping[str, Mapping[str, int]]) -> str:
    largest = max((sum(c.values()) for c in per_class.values()), default=1) or 1
    rows = [
        [
            escape(name),
            counts.get("train", 0),
            counts.get("test", 0),
            f'<span class="bar" style="width:{int(160 * sum(counts.values()) / largest)}px"></span>',
        ]
        for name, counts in per_class.items()
    ]
    return table(["class", "train", "test", ""], rows, numeric=[1, 2])


def _quarantine(ingest: Path) -> str:
    entries = read_json_checked(ingest / ingest_layout.QUARANTINE_FILE, QUARANTINE_SHAPE, [])
    if not entries:
        return "<p>No file was quarantined.</p>"
    summary, files, not_shown = quarantine_tables(entries, QUARANTINE_ROWS)
    more = f"<p class='muted'>... and {not_shown} more in {ingest_layout.QUARANTINE_FILE}.</p>" if not_shown else ""
    return (
        f"<p>{len(entries)} file(s) quarantined.</p>{summary}<details><summary>Files</summary>{files}{more}</details>"
    )
