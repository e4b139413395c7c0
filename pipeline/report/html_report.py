"""A self-contained HTML report of a run folder: one file, inline CSS and images, no scripts, nothing fetched.

It reads the stage folders the local runner leaves (``DIR/<stage>/`` with ``manifest.json``) and ``run.json``,
finding files by the names each stage's ``layout`` module publishes:
data statistics and anomalies (ingest, validate), the quarantine summary, the model comparison, the confusion
matrices and the blessing decision (evaluate), and what was published. A stage without a complete folder is
reported as not run. Nothing heavy is imported: statistics are read with tensorflow-metadata's protos only.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hubpipe.components.common.html_parts import STYLE, escape, page, quarantine_tables, table
from hubpipe.components.evaluate import layout as evaluate_layout
from hubpipe.components.ingest import layout as ingest_layout
from hubpipe.components.publish import layout as publish_layout
from hubpipe.components.train import layout as train_layout
from hubpipe.components.validate import layout as validate_layout
from hubpipe.pipeline.core.artifacts import read_json_checked, write_text_atomic
from hubpipe.pipeline.core.execution import complete_dir
from hubpipe.pipeline.core.locking import run_in_progress
from hubpipe.pipeline.core.run_folder import RUN_FILE

#: The report's file name in a run folder unless told otherwise (``hubpipe report``, MLflow tracking).
REPORT_FILE = "report.html"
QUARANTINE_ROWS = 100

#: What the report reads from each file (see :func:`~hubpipe.pipeline.core.artifacts.read_json_checked`): the
#: containers it walks through; the values it shows are escaped whatever their type.
_NUMBER = (int, float)
RUN_SHAPE = {"stages": [dict], "process": dict, "tracking": dict}
QUARANTINE_SHAPE = [dict]
ANOMALIES_SHAPE = [dict]
INGEST_SUMMARY_SHAPE = {"source": dict, "formats": dict, "per_class": {"*": {"*": _NUMBER}}}
BLESSING_SHAPE = {
    "candidates": [{"accuracy": _NUMBER}],
    "checks": [dict],
    "reasons": list,
    "reference": {"metrics": dict},
    "thresholds": dict,
}
PUBLISH_SHAPE = {"hints": list}


def _num(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(value)


def _pill(text: str, kind: str) -> str:
    return f'<span class="pill {kind}">{escape(text)}</span>'


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


class RunFolder:
    """A run folder's stage folders and run.json."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.run = read_json_checked(self.root / RUN_FILE, RUN_SHAPE, {})

    def stage(self, name: str) -> Path | None:
        """The stage's folder when it is complete (has its manifest), else None."""
        return complete_dir(self.root / name)

    @property
    def status(self) -> str:
        """run.json's status, except that a run whose process is gone is "interrupted", not "running"."""
        status = str(self.run.get("status", "unknown"))
        if status == "running" and not run_in_progress(self.root):
            return "interrupted"
        return status

    def record(self, name: str) -> dict[str, Any]:
        return next((s for s in self.run.get("stages") or [] if s.get("name") == name), {})


def _not_run(stage: str, run: RunFolder) -> str:
    record = run.record(stage)
    status = record.get("status") or "not run"
    error = f": {escape(record['error'])}" if record.get("error") else ""
    return f'<p class="muted">The {stage} stage has no results in this folder ({escape(status)}{error}).</p>'


def _overview(run: RunFolder) -> str:
    rows = []
    for record in run.run.get("stages") or []:
        status = record.get("status", "")
        kind = {"ran": "ok", "cached": "neutral", "failed": "bad"}.get(status, "warn")
        rows.append(
            [
                escape(record.get("name")),
                _pill(status, kind),
                _num(record.get("duration_s")),
                escape(record.get("error", "")),
            ]
        )
    status = run.status
    updated, version = escape(run.run.get("updated", "?")), escape(run.run.get("hubpipe_version", "?"))
    verdict = _pill(status, "ok" if status == "succeeded" else "bad")
    process = run.run.get("process") or {}
    if status in ("running", "interrupted") and isinstance(process, dict) and process.get("pid"):
        verdict += escape(f" (pid {process['pid']} on {process.get('host', '?')}, started {process.get('started')})")
    header = (
        f"<p>Run folder <code>{escape(run.root.resolve())}</code>: {verdict}"
        f' <span class="muted">updated {updated}, hubpipe {version}</span></p>'
    )
    if not rows:
        return header + '<p class="muted">No run.json: the pipeline has not run in this folder.</p>'
    return header + table(["stage", "status", "seconds", "error"], rows, numeric=[2]) + _tracking(run)


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
    return f"<p>MLflow {_pill(label, kind)}{where}{run_id}{detail}</p>"


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


def _data_section(run: RunFolder) -> str:
    ingest = run.stage(ingest_layout.STAGE)
    if ingest is None:
        return "<h2>Data</h2>" + _not_run(ingest_layout.STAGE, run)
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


def _feature_rows(statistics: Any) -> list[list[str]]:
    rows = []
    for dataset in statistics.datasets:
        for feature in dataset.features:
            name = feature.path.step[-1] if feature.path.step else feature.name
            kind = feature.WhichOneof("stats")
            if kind == "num_stats":
                s = feature.num_stats
                detail = f"min {s.min:g}, mean {s.mean:.1f}, median {s.median:g}, max {s.max:g}"
                count = s.common_stats.num_non_missing
            elif kind == "string_stats":
                s = feature.string_stats
                top = ", ".join(f"{v.value} ({int(v.frequency)})" for v in s.top_values[:3])
                detail, count = f"{s.unique} unique; top: {top}", s.common_stats.num_non_missing
            elif kind == "bytes_stats":
                s = feature.bytes_stats
                detail = f"{s.avg_num_bytes / 1024:.1f} KiB on average, at most {s.max_num_bytes / 1024:.1f} KiB"
                count = s.common_stats.num_non_missing
            else:
                continue
            rows.append(
                [
                    escape(dataset.name or ""),
                    escape(name),
                    escape(kind.replace("_stats", "")),
                    str(count),
                    escape(detail),
                ]
            )
    return rows


def _statistics(validate: Path) -> str:
    try:
        from tensorflow_metadata.proto.v0 import statistics_pb2
    except ImportError:  # pragma: no cover - installed with TFDV
        return ""
    rows = []
    for path in sorted((validate / validate_layout.STATS_DIR).glob("*.pb")):
        statistics = statistics_pb2.DatasetFeatureStatisticsList()
        try:
            statistics.ParseFromString(path.read_bytes())
        except Exception:  # a damaged file is reported, not fatal
            rows.append([escape(path.stem), "-", "-", "-", "unreadable statistics file"])
            continue
        rows.extend([escape(path.stem), *row[1:]] for row in _feature_rows(statistics))
    if not rows:
        return ""
    statistics = table(["split", "feature", "type", "values", "summary"], rows, numeric=[3])
    return f"<details><summary>Feature statistics (TFDV)</summary>{statistics}</details>"


def _validation_section(run: RunFolder) -> str:
    validate = run.stage(validate_layout.STAGE)
    if validate is None:
        return "<h2>Validation</h2>" + _not_run(validate_layout.STAGE, run)
    results = run.record(validate_layout.STAGE).get("results", {})
    verdict = results.get("verdict", "?")
    kind = {"passed": "ok", "warned": "warn", "failed": "bad"}.get(verdict, "neutral")
    anomalies = read_json_checked(validate / validate_layout.ANOMALIES_FILE, ANOMALIES_SHAPE, [])
    drift = results.get("class_drift_linf")
    head = f"<p>Verdict: {_pill(verdict, kind)}"
    head += f" &nbsp; class drift (L-infinity) vs the previous run: {_num(drift)}</p>" if drift is not None else "</p>"
    if anomalies:
        rows = [
            [
                escape(a.get("severity")),
                escape(a.get("kind")),
                escape(a.get("feature")),
                escape(a.get("split")),
                escape(a.get("description")),
            ]
            for a in anomalies
        ]
        body = table(["severity", "kind", "feature", "split", "description"], rows)
    else:
        body = "<p>No anomalies.</p>"
    return "<h2>Validation</h2>" + head + body + _statistics(validate)


def model_rows(run: RunFolder, blessing: Mapping[str, Any], evaluate: Path | None) -> list[dict[str, Any]]:
    """One row per trained model: its kind, backbone, test metrics (from evaluate when it ran), training
    seconds and gate (``blessed``, ``passed``, ``failed`` or ``baseline``); the report's and the API's table."""
    train = run.stage(train_layout.STAGE)
    if train is None:
        return []
    passed = {c.get("name"): c.get("passed") for c in blessing.get("candidates") or []}
    rows = []
    for info_path in sorted((train / train_layout.MODELS_DIR).glob(f"*/{train_layout.MODEL_FILE}")):
        info = read_json_checked(info_path, dict, {})
        name = str(info.get("name") or info_path.parent.name)
        metrics = (
            read_json_checked(evaluate / evaluate_layout.METRICS_DIR / f"{name}.json", dict, {}) if evaluate else {}
        )
        backbone = info.get("backbone") if isinstance(info.get("backbone"), dict) else {}
        rows.append(
            {
                "model": name,
                "kind": info.get("kind"),
                "mode": info.get("mode"),
                "backbone": backbone.get("name"),
                "accuracy": metrics.get("accuracy", info.get("test_accuracy")),
                "top5_accuracy": metrics.get("top5_accuracy"),
                "macro_f1": metrics.get("macro_f1"),
                "log_loss": metrics.get("log_loss"),
                "train_seconds": info.get("train_seconds"),
                "gate": _gate(name, blessing, passed),
            }
        )
    return rows


def _models_section(run: RunFolder, blessing: Mapping[str, Any], evaluate: Path | None) -> str:
    if run.stage(train_layout.STAGE) is None:
        return "<h2>Models</h2>" + _not_run(train_layout.STAGE, run)
    pills = {"blessed": "ok", "baseline": "neutral", "passed": "neutral", "failed": "bad"}
    rows = [
        [
            escape(row["model"]),
            escape(row["kind"] or "?"),
            escape(row["mode"] or "?"),
            escape(row["backbone"] or "-"),
            _num(row["accuracy"]),
            _num(row["top5_accuracy"]),
            _num(row["macro_f1"]),
            _num(row["log_loss"]),
            _num(row["train_seconds"], 1),
            _pill(row["gate"], pills[row["gate"]]),
        ]
        for row in model_rows(run, blessing, evaluate)
    ]
    headers = ["model", "kind", "mode", "backbone", "accuracy", "top-5", "macro-F1", "log loss", "train s", "gate"]
    return "<h2>Models</h2>" + table(headers, rows, numeric=[4, 5, 6, 7, 8])


def _gate(name: str, blessing: Mapping[str, Any], passed: Mapping[str, Any]) -> str:
    if blessing.get("blessed") == name:
        return "blessed"
    if name not in passed:
        return "baseline"
    return "passed" if passed[name] else "failed"


def _checks_table(blessing: Mapping[str, Any]) -> str:
    rows = []
    for check in blessing.get("checks") or []:
        result = {True: _pill("passed", "ok"), False: _pill("failed", "bad")}.get(
            check.get("passed"), _pill("skipped", "neutral")
        )
        rows.append(
            [
                escape(check.get("candidate")),
                escape(check.get("name")),
                _num(check.get("value")),
                _num(check.get("threshold")),
                result,
                escape(check.get("detail", "")),
            ]
        )
    return table(["candidate", "check", "value", "threshold", "result", "detail"], rows, numeric=[2, 3])


def _pictures(evaluate: Path, blessing: Mapping[str, Any]) -> str:
    folders = sorted(p for p in (evaluate / evaluate_layout.IMAGES_DIR).glob("*") if p.is_dir())
    first = blessing.get("blessed") or max(
        blessing.get("candidates") or [], key=lambda c: c.get("accuracy") or 0, default={}
    ).get("name")
    parts = []
    for folder in sorted(folders, key=lambda f: (f.name != first, f.name)):
        images = "".join(_image(p, f"{folder.name} {p.stem}") for p in sorted(folder.glob("*.png")))
        state = " open" if folder.name == first else ""
        parts.append(f"<details{state}><summary>{escape(folder.name)}</summary>{images}</details>")
    return "<h3>Confusion matrices and misclassified test images</h3>" + "".join(parts) if parts else ""


def _blessing_section(run: RunFolder, blessing: Mapping[str, Any], evaluate: Path | None) -> str:
    if evaluate is None:
        return "<h2>Blessing</h2>" + _not_run(evaluate_layout.STAGE, run)
    blessed = blessing.get("blessed")
    verdict = _pill(f"blessed: {blessed}", "ok") if blessed else _pill("not blessed", "bad")
    reasons = "".join(f"<li>{escape(r)}</li>" for r in blessing.get("reasons") or [])
    reference = blessing.get("reference") or {}
    if reference.get("metrics"):
        accuracy = _num(reference["metrics"].get("accuracy"))
        how = escape(reference.get("method"))
        compared = f"last blessed model {escape(reference.get('version'))} (scored via {how}): accuracy {accuracy}"
    else:
        compared = f"last blessed model: {escape(reference.get('skip_reason') or 'none')}"
    thresholds = ", ".join(f"{escape(k)} = {escape(v)}" for k, v in (blessing.get("thresholds") or {}).items())
    evaluation_id = escape(blessing.get("evaluation_id", "?"))
    return (
        f"<h2>Blessing</h2><p>{verdict} <span class='muted'>evaluation {evaluation_id}</span></p>"
        f"<ul>{reasons}</ul><p>Compared with the {compared}.<br>Thresholds: {thresholds}</p>"
        + _checks_table(blessing)
        + _pictures(evaluate, blessing)
    )


def _publish_section(run: RunFolder) -> str:
    publish = run.stage(publish_layout.STAGE)
    if publish is None:
        return "<h2>Publication</h2>" + _not_run(publish_layout.STAGE, run)
    record = read_json_checked(publish / publish_layout.PUBLISH_FILE, PUBLISH_SHAPE, {})
    facts = [
        ["model", escape(record.get("note", "-"))],
        ["published version", escape(record.get("version") or "none")],
        ["latest version", escape(record.get("latest") or "none")],
        ["publish root", f"<code>{escape(record.get('root', '?'))}</code>"],
        ["this run's logs", f"<code>{escape(record.get('logs_dir', '?'))}</code>"],
        ["Kubeflow Tensorboard", escape(record.get("tensorboard_resource") or record.get("resource_note") or "-")],
    ]
    hints = "".join(f"<li><code>{escape(h)}</code></li>" for h in record.get("hints") or [])
    return "<h2>Publication</h2>" + table(["", ""], facts) + (f"<p>View the logs:</p><ul>{hints}</ul>" if hints else "")


SECTIONS: tuple[Callable[[RunFolder], str], ...] = (_overview, _data_section, _validation_section)


def read_blessing(run: RunFolder) -> tuple[dict[str, Any], Path | None]:
    """The evaluate stage's blessing.json (empty when evaluate has not run) and its folder."""
    evaluate = run.stage(evaluate_layout.STAGE)
    blessing = read_json_checked(evaluate / evaluate_layout.BLESSING_FILE, BLESSING_SHAPE, {}) if evaluate else {}
    return blessing, evaluate


def render_summary(run_dir: Path) -> str:
    """An HTML fragment for notebooks: the overview, the model comparison and the blessing, with a style
    scoped to the fragment (a notebook page keeps its own)."""
    run = RunFolder(run_dir)
    blessing, evaluate = read_blessing(run)
    body = _overview(run) + _models_section(run, blessing, evaluate) + _blessing_section(run, blessing, evaluate)
    scoped = "".join(f".hubpipe-run {rule}}}" for rule in STYLE.strip().split("}") if rule and "body{" not in rule)
    return f'<div class="hubpipe-run"><style>{scoped}</style>{body}</div>'


def render_report(run_dir: Path) -> str:
    """The report of ``run_dir`` as one HTML document."""
    run = RunFolder(run_dir)
    blessing, evaluate = read_blessing(run)
    body = "".join(section(run) for section in SECTIONS)
    body += (
        _models_section(run, blessing, evaluate) + _blessing_section(run, blessing, evaluate) + _publish_section(run)
    )
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    title = f"hubpipe run report: {run.root.name}"
    return page(title, f"<h1>hubpipe run report</h1><p class='muted'>written {created}</p>{body}")


def write_report(run_dir: Path, output: Path) -> Path:
    write_text_atomic(output, render_report(run_dir))
    return output
