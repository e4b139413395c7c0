"""Pieces of hubpipe's self-contained HTML pages (the validation report, the run report, the Kubeflow UI's
HTML outputs): the one stylesheet, the page around a body, escaping and tables."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

#: The stylesheet of every hubpipe HTML page.
STYLE = """
body{font-family:system-ui,-apple-system,sans-serif;margin:2em auto;color:#222;max-width:1150px;padding:0 1em}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #e3e3e3;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0 1.2em}
th,td{border:1px solid #d5d5d5;padding:.25em .6em;text-align:left;vertical-align:top;font-size:.92em}
th{background:#f3f3f3}.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#777}.bar{background:#4a7fd4;height:.75em;display:inline-block;vertical-align:middle}
.pill{display:inline-block;padding:.15em .6em;border-radius:1em;font-weight:600;font-size:.9em}
.ok{background:#e6f4ea;color:#0b6b2b}.bad{background:#fde7ea;color:#a0001c}.warn{background:#fff4e0;color:#8a5200}
.neutral{background:#eef0f3;color:#444}img{max-width:100%;border:1px solid #e3e3e3}
details{margin:.4em 0}summary{cursor:pointer;font-weight:600}
.error{color:#b00020;font-weight:600}.warning{color:#a06000;font-weight:600}
.verdict{font-size:1.3em;padding:.4em .8em;display:inline-block;border-radius:4px}
.failed{background:#fde7ea}.passed{background:#e6f4ea}.warned{background:#fff4e0}
"""

#: No scripts, nothing fetched from anywhere: inline styles and embedded (data:) images only.
OFFLINE_POLICY = (
    '<meta http-equiv="Content-Security-Policy" '
    "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
)


def page(title: str, body: str) -> str:
    """A whole HTML document around ``body`` (inserted as given): the stylesheet inline, and the offline policy,
    so that the file shows the same from a disk, an artifact store or the KFP UI."""
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">{OFFLINE_POLICY}'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>\n"
    )


def escape(value: Any) -> str:
    return html.escape(str(value))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    """An HTML table; cells are inserted as given (escape them first), numeric columns are right-aligned.

    Headers that are all empty give a table without a header row.
    """
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    head = f"<tr>{head}</tr>" if any(headers) else ""
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table>{head}{body}</table>"


def quarantine_tables(entries: Sequence[dict[str, Any]], limit: int) -> tuple[str, str, int]:
    """The ingest quarantine as two tables: files per reason, and the first ``limit`` files with their reasons.

    Returns ``(summary, files, not_shown)``, where ``not_shown`` counts the entries beyond ``limit``.
    """
    by_reason: dict[str, int] = {}
    for entry in entries:
        reason = str(entry.get("reason", "?"))
        by_reason[reason] = by_reason.get(reason, 0) + 1
    counts = sorted(([escape(reason), n] for reason, n in by_reason.items()), key=lambda row: -row[1])
    shown = [
        [escape(e.get("path", "")), escape(e.get("reason", "")), escape(e.get("detail", ""))] for e in entries[:limit]
    ]
    return (
        table(["reason", "files"], counts, numeric=[1]),
        table(["file", "reason", "detail"], shown),
        len(entries) - len(shown),
    )
