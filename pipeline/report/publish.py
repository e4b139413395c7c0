"""The report's publication section (the publish stage): the published version, LATEST, where the logs went."""

from __future__ import annotations

from hubpipe.components.common.html_parts import escape, table
from hubpipe.components.publish import layout as publish_layout
from hubpipe.pipeline.core.artifacts import read_json_checked
from hubpipe.pipeline.report.formatting import not_run
from hubpipe.pipeline.run_results import RunFolder

PUBLISH_SHAPE = {"hints": list}


def publish_section(run: RunFolder) -> str:
    publish = run.stage(publish_layout.STAGE)
    if publish is None:
        return "<h2>Publication</h2>" + not_run(publish_layout.STAGE, run)
    record = read_json_checked(publish / publish_layout.PUBLISH_FILE, PUBLISH_SHAPE, {})
    facts = [
        ["run name", escape(record.get("run_name") or "-")],
        ["model", escape(record.get("note", "-"))],
        ["published version", escape(record.get("version") or "none")],
        ["version folder", f"<code>{escape(record['version_dir'])}</code>" if record.get("version_dir") else "-"],
        ["latest version", escape(record.get("latest") or "none")],
        ["publish root", f"<code>{escape(record.get('root', '?'))}</code>"],
        ["this run's logs", f"<code>{escape(record.get('logs_dir', '?'))}</code>"],
        ["Kubeflow Tensorboard", escape(record.get("tensorboard_resource") or record.get("resource_note") or "-")],
    ]
    hints = "".join(f"<li><code>{escape(h)}</code></li>" for h in record.get("hints") or [])
    return "<h2>Publication</h2>" + table(["", ""], facts) + (f"<p>View the logs:</p><ul>{hints}</ul>" if hints else "")
