"""Pieces of the self-contained HTML reports (validation report, run report): escaping and tables."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any


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
