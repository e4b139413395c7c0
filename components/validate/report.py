"""The validation report: one HTML file with the verdict, anomalies, class balance, quarantine summary and a
per-feature statistics table.

The page is plain HTML and CSS in the file itself and works offline; its Content-Security-Policy forbids any
script and any remote resource (see :func:`hubpipe.components.common.html_parts.page`). TFDV's interactive
view (Facets Overview, ``tfdv.get_statistics_html``) is not embedded: it loads unpinned scripts from the web
(an HTML import from a moving branch, which cannot carry an integrity hash). The statistics files beside the
report open in it from a notebook instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hubpipe.components.common.html_parts import escape, page, quarantine_tables, table
from hubpipe.components.validate.checks import ERROR, Anomaly

QUARANTINE_ROWS = 200
INTERACTIVE_VIEW_NOTE = (
    "<p>Interactive view (TFDV's Facets Overview, needs internet): in a notebook, "
    "<code>tfdv.visualize_statistics(tfdv.load_stats_binary('statistics/train.pb'))</code>.</p>"
)


@dataclass
class ReportData:
    verdict: str  # passed, warned or failed
    policy: str
    source: str
    schema_origin: str
    anomalies: list[Anomaly]
    class_counts: Mapping[str, Mapping[str, int]]  # class -> split -> examples
    quarantine: list[dict[str, str]] = field(default_factory=list)
    drift: float | None = None
    statistics: Mapping[str, Any] = field(default_factory=dict)  # split -> DatasetFeatureStatisticsList


def render_report(data: ReportData) -> str:
    sections = [
        _header(data),
        "<h2>Anomalies</h2>",
        _anomalies(data.anomalies),
        "<h2>Class balance</h2>",
        _class_balance(data.class_counts),
        "<h2>Quarantine (files not ingested)</h2>",
        _quarantine(data.quarantine),
        "<h2>Feature statistics</h2>",
        *(_feature_table(split, stats) for split, stats in data.statistics.items()),
        INTERACTIVE_VIEW_NOTE,
    ]
    return page("hubpipe data validation", f"<h1>Data validation</h1>{''.join(sections)}")


def _header(data: ReportData) -> str:
    text = {"passed": "passed", "warned": "passed with warnings", "failed": f"failed (policy {data.policy})"}
    drift = "no previous run to compare" if data.drift is None else f"{data.drift:.3f} (L-infinity vs previous run)"
    rows = [
        ("source", escape(data.source)),
        ("schema", escape(data.schema_origin)),
        ("class distribution drift", escape(drift)),
        ("policy", escape(data.policy)),
    ]
    return f'<p class="verdict {escape(data.verdict)}">{escape(text[data.verdict])}</p>' + table(("", ""), rows)


def _anomalies(anomalies: list[Anomaly]) -> str:
    if not anomalies:
        return "<p>None.</p>"
    rows = [
        (
            f'<span class="{escape(a.severity)}">{escape(a.severity)}</span>',
            escape(a.kind),
            escape(a.split),
            escape(a.feature),
            escape(a.description),
        )
        for a in sorted(anomalies, key=lambda a: (a.severity != ERROR, a.kind))
    ]
    return table(("severity", "kind", "split", "feature", "description"), rows)


def _class_balance(counts: Mapping[str, Mapping[str, int]]) -> str:
    if not counts:
        return "<p>No examples.</p>"
    largest = max((c.get("train", 0) for c in counts.values()), default=0) or 1
    rows = []
    for label in sorted(counts):
        train, test = counts[label].get("train", 0), counts[label].get("test", 0)
        bar = f'<span class="bar" style="width:{200 * train // largest}px"></span>'
        rows.append((escape(label), train, test, bar))
    return table(("class", "train", "test", "train images"), rows, numeric=(1, 2))


def _quarantine(entries: list[dict[str, str]]) -> str:
    if not entries:
        return "<p>None: every file found was ingested.</p>"
    summary, files, not_shown = quarantine_tables(entries, QUARANTINE_ROWS)
    more = f"<p>... and {not_shown} more in quarantine.json.</p>" if not_shown else ""
    return summary + files + more


def _feature_table(split: str, statistics: Any) -> str:
    if not statistics.datasets:
        return ""
    dataset = statistics.datasets[0]
    rows = [_feature_row(feature) for feature in sorted(dataset.features, key=lambda x: list(x.path.step))]
    title = f"<h3>{escape(split)} ({dataset.num_examples} examples)</h3>"
    return title + table(("feature", "type", "present", "summary"), rows, numeric=(2,))


def _feature_row(feature: Any) -> tuple[str, str, int, str]:
    from tensorflow_metadata.proto.v0 import statistics_pb2

    name = "/".join(feature.path.step) or feature.name
    kind = feature.WhichOneof("stats")
    stats = getattr(feature, kind) if kind else None
    present = stats.common_stats.num_non_missing if stats is not None else 0
    if kind == "num_stats":
        summary = f"min {stats.min:g}, mean {stats.mean:.1f}, max {stats.max:g}"
    elif kind == "string_stats":
        top = ", ".join(f"{v.value} ({int(v.frequency)})" for v in stats.top_values[:5])
        summary = f"{stats.unique} unique; top: {top}"
    elif kind == "bytes_stats":
        summary = (
            f"bytes: min {stats.min_num_bytes:,.0f}, mean {stats.avg_num_bytes:,.0f}, max {stats.max_num_bytes:,.0f}"
        )
    else:
        summary = ""
    custom = [_custom_stat(c) for c in feature.custom_stats if c.name != "domain_info"]
    summary = "; ".join(s for s in (summary, *custom) if s)
    type_name = statistics_pb2.FeatureNameStatistics.Type.Name(feature.type)
    return escape(name), escape(type_name), present, escape(summary)


def _custom_stat(stat: Any) -> str:
    kind = stat.WhichOneof("val")
    if kind == "rank_histogram":
        return f"{stat.name}: " + ", ".join(f"{b.label} {int(b.sample_count)}" for b in stat.rank_histogram.buckets)
    if kind == "num":
        return f"{stat.name}: {stat.num:g}"
    if kind == "str":
        return f"{stat.name}: {stat.str}"
    return ""
