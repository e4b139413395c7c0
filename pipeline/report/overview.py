"""The report's overview: the run's name and status, where its other records are (run.json ``links``), each
stage's status and seconds, and MLflow tracking."""

from __future__ import annotations

from hubpipe.components.common.html_parts import escape, table
from hubpipe.pipeline.report.formatting import number, pill
from hubpipe.pipeline.run_results import RunFolder


def overview_section(run: RunFolder) -> str:
    rows = []
    for record in run.records():
        status = record.get("status", "")
        kind = {"ran": "ok", "cached": "neutral", "failed": "bad"}.get(status, "warn")
        rows.append(
            [
                escape(record.get("name")),
                pill(status, kind),
                number(record.get("duration_s")),
                escape(record.get("error", "")),
            ]
        )
    status = run.status
    updated, version = escape(run.run.get("updated", "?")), escape(run.run.get("hubpipe_version", "?"))
    verdict = pill(status, "ok" if status == "succeeded" else "bad")
    process = run.run.get("process") or {}
    if status in ("running", "interrupted") and isinstance(process, dict) and process.get("pid"):
        verdict += escape(f" (pid {process['pid']} on {process.get('host', '?')}, started {process.get('started')})")
    header = (
        f"<p>Run <b>{escape(run.name)}</b> in <code>{escape(run.root.resolve())}</code>: {verdict}"
        f' <span class="muted">updated {updated}, hubpipe {version}</span></p>'
    )
    if not rows:
        return header + '<p class="muted">No run.json: the pipeline has not run in this folder.</p>'
    stages = table(["stage", "status", "seconds", "error"], rows, numeric=[2])
    return header + _links(run) + stages + _tracking(run)


#: run.json's links, in the order and words the report shows them.
LINK_LABELS = {
    "run_folder": "run folder",
    "tensorboard_logs": "TensorBoard logs",
    "published_version": "published version",
    "publish_root": "publish root",
    "evaluation_id": "evaluation id",
    "mlflow_run": "MLflow run",
}


def _links(run: RunFolder) -> str:
    """Where the run's other records are: a web address as a link, a path or an id as code."""
    rows = []
    for key, label in LINK_LABELS.items():
        value = run.links.get(key)
        if value:
            shown = escape(value)
            web = value.startswith(("http://", "https://"))
            rows.append([label, f'<a href="{shown}">{shown}</a>' if web else f"<code>{shown}</code>"])
    return table(["", ""], rows) if rows else ""


def _tracking(run: RunFolder) -> str:
    """What MLflow tracking did (run.json ``tracking``), when it was asked for."""
    tracking = run.run.get("tracking") or {}
    status = tracking.get("status")
    if not status:
        return ""
    kind = {"logged": "ok", "up_to_date": "neutral", "failed": "bad"}.get(status, "warn")
    label = "tracking failed" if status == "failed" else status.replace("_", " ")
    where = f" to <code>{escape(tracking.get('uri', '?'))}</code>"
    run_id = f", run {escape(tracking['run_id'])}" if tracking.get("run_id") else ""
    detail = f": {escape(tracking['error'])}" if tracking.get("error") else ""
    return f"<p>MLflow {pill(label, kind)}{where}{run_id}{detail}</p>"
