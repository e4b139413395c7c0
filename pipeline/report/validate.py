"""The report's validation section (the validate stage): the verdict, class drift, anomalies and TFDV's feature
statistics, read with tensorflow-metadata's protos only (nothing heavy is imported)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hubpipe.components.common.html_parts import escape, table
from hubpipe.components.validate import layout as validate_layout
from hubpipe.pipeline.core.artifacts import read_json_checked
from hubpipe.pipeline.report.formatting import not_run, number, pill
from hubpipe.pipeline.run_results import RunFolder

ANOMALIES_SHAPE = [dict]


def validation_section(run: RunFolder) -> str:
    validate = run.stage(validate_layout.STAGE)
    if validate is None:
        return "<h2>Validation</h2>" + not_run(validate_layout.STAGE, run)
    results = run.record(validate_layout.STAGE).get("results", {})
    verdict = results.get("verdict", "?")
    kind = {"passed": "ok", "warned": "warn", "failed": "bad"}.get(verdict, "neutral")
    anomalies = read_json_checked(validate / validate_layout.ANOMALIES_FILE, ANOMALIES_SHAPE, [])
    drift = results.get("class_drift_linf")
    head = f"<p>Verdict: {pill(verdict, kind)}"
    head += (
        f" &nbsp; class drift (L-infinity) vs the previous run: {number(drift)}</p>" if drift is not None else "</p>"
    )
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
