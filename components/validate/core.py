"""The validate core: a :class:`ValidateRequest` in (an ingest folder), statistics, schema, anomalies and a
report out (the folder of :mod:`.layout`), and a :class:`~hubpipe.pipeline.core.stage.DataOutcome`.

The previous run's schema and training statistics (``previous_dir``) are the baseline for class checks and
drift only when they describe the same data source; a new source starts a new baseline. Rejected data never
become the baseline. With policy ``warn``, accepted changes of the class list are written into the schema, so
the next run compares against them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubpipe.components.common import features as f
from hubpipe.components.ingest import layout as ingest_layout
from hubpipe.components.validate import checks
from hubpipe.components.validate import schema as schemas
from hubpipe.components.validate.checks import ERROR, WARNING, Anomaly
from hubpipe.components.validate.layout import (
    ANOMALIES_FILE,
    BASELINE_FILE,
    BASELINE_STATS,
    REPORT_FILE,
    SCHEMA_FILE,
    STATS_DIR,
)
from hubpipe.components.validate.report import ReportData, render_report
from hubpipe.components.validate.statistics import compute_statistics, load_statistics
from hubpipe.pipeline.core.artifacts import read_json, write_json_atomic, write_text_atomic
from hubpipe.pipeline.core.config import DataConfig, ValidateConfig
from hubpipe.pipeline.core.errors import DataError
from hubpipe.pipeline.core.runtime import import_tfdv
from hubpipe.pipeline.core.stage import DataOutcome

LOG = logging.getLogger("hubpipe.validate")

SHOWN_IN_RESULTS = 20
TRAIN, TEST = f.SPLITS


@dataclass(frozen=True)
class ValidateRequest:
    ingest_dir: Path
    output_dir: Path
    settings: ValidateConfig
    data: DataConfig
    previous_dir: Path | None = None  # this stage's folder from the previous run: the baseline
    beam_args: Sequence[str] = ()


@dataclass
class Baseline:
    """What the previous run of this stage left for comparison (same data source only)."""

    schema: Any = None
    train_statistics: Any = None


def _read_json_or(path: Path, default: Any) -> Any:
    try:
        return read_json(path)
    except (OSError, ValueError):
        return default


def load_baseline(previous_dir: Path | None, source: str) -> Baseline:
    """The previous run's schema and accepted training statistics, when they describe the same source."""
    record = _read_json_or(previous_dir / BASELINE_FILE, {}) if previous_dir is not None else {}
    if previous_dir is None or record.get("source") != source:
        return Baseline()
    schema_file = previous_dir / SCHEMA_FILE
    stats_file = previous_dir / record.get("train_statistics", f"{STATS_DIR}/{TRAIN}.pb")
    return Baseline(
        schema=schemas.load_schema(schema_file, "previous schema") if schema_file.is_file() else None,
        train_statistics=load_statistics(stats_file) if stats_file.is_file() else None,
    )


def _write_baseline(output_dir: Path, source: str, rejected: bool, baseline: Baseline) -> None:
    """Records the reference for the next run: this run's training statistics, unless the data were rejected,
    in which case the previous reference is carried forward (drift is measured against accepted data)."""
    reference = f"{STATS_DIR}/{TRAIN}.pb"
    if rejected and baseline.train_statistics is not None:
        reference = BASELINE_STATS
        (output_dir / reference).parent.mkdir(parents=True, exist_ok=True)
        (output_dir / reference).write_bytes(baseline.train_statistics.SerializeToString())
    write_json_atomic(output_dir / BASELINE_FILE, {"source": source, "train_statistics": reference})


@dataclass
class Assessment:
    """The outcome of the checks."""

    anomalies: list[Anomaly]
    counts: dict[str, dict[str, int]]  # split -> class -> examples
    drift: float | None
    verdict: str  # passed, warned or failed

    @property
    def errors(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.severity == ERROR]

    @property
    def warnings(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.severity == WARNING]


def validate(request: ValidateRequest) -> DataOutcome:
    """Computes statistics, checks them against the schema and the baseline, and writes the artifacts; the
    outcome is rejected when policy ``fail`` meets error anomalies."""
    ingest_dir, output_dir, settings, data = request.ingest_dir, request.output_dir, request.settings, request.data
    labels = f.read_labels(ingest_dir)
    source = _read_json_or(ingest_dir / ingest_layout.SUMMARY_FILE, {}).get("source", {}).get("description", "")
    baseline = load_baseline(request.previous_dir, source)
    schema, origin = _starting_schema(settings, data, baseline)
    stats_schema = schema if schema is not None else schemas.base_schema(data.max_file_bytes)
    stats_files = compute_statistics(ingest_dir, output_dir, f.SPLITS, stats_schema, request.beam_args)
    if TRAIN not in stats_files:
        raise DataError(f"the ingest output {ingest_dir} has no training examples to validate")
    statistics = {split: load_statistics(path) for split, path in stats_files.items()}
    if schema is None:
        schema = schemas.infer_schema(statistics[TRAIN], labels, data.max_file_bytes)
    schemas.set_drift_threshold(schema, settings.drift_threshold)
    outcome = _assess(schema, statistics, baseline, settings, output_dir)
    if outcome.errors and settings.policy == "warn":
        schemas.set_string_domain(schema, f.LABEL_TEXT, sorted(outcome.counts[TRAIN]))
    schemas.write_schema(schema, output_dir / SCHEMA_FILE)
    write_json_atomic(output_dir / ANOMALIES_FILE, [a.to_dict() for a in outcome.anomalies])
    _write_baseline(output_dir, source, outcome.verdict == "failed", baseline)
    report = ReportData(
        verdict=outcome.verdict,
        policy=settings.policy,
        source=source,
        schema_origin=origin,
        anomalies=outcome.anomalies,
        class_counts=_class_table(outcome.counts),
        quarantine=_read_json_or(ingest_dir / ingest_layout.QUARANTINE_FILE, []),
        drift=outcome.drift,
        statistics=statistics,
    )
    write_text_atomic(output_dir / REPORT_FILE, render_report(report))
    _log(outcome)
    rejected = _rejection(outcome.errors, settings.policy) if outcome.verdict == "failed" else None
    return DataOutcome(_results(outcome, origin, len(labels)), rejected=rejected)


def _results(outcome: Assessment, origin: str, classes: int) -> dict[str, Any]:
    return {
        "verdict": outcome.verdict,
        "anomalies": len(outcome.errors),
        "warnings": len(outcome.warnings),
        "schema": origin,
        "classes": classes,
        "train_examples": sum(outcome.counts[TRAIN].values()),
        "test_examples": sum(outcome.counts.get(TEST, {}).values()),
        "class_drift_linf": None if outcome.drift is None else round(outcome.drift, 4),
        "anomaly_list": [f"{a.severity}: {a.line()}" for a in outcome.anomalies[:SHOWN_IN_RESULTS]],
    }


def _starting_schema(settings: ValidateConfig, data: DataConfig, baseline: Baseline) -> tuple[Any, str]:
    if settings.schema:
        schema = schemas.load_schema(Path(settings.schema).expanduser())
        schemas.set_image_domain(schema, data.max_file_bytes, overwrite=False)
        return schema, f"curated ({settings.schema})"
    if baseline.schema is not None:
        schemas.set_image_domain(baseline.schema, data.max_file_bytes)
        return baseline.schema, "previous run"
    return None, "inferred"


def _assess(
    schema: Any, statistics: dict[str, Any], baseline: Baseline, settings: ValidateConfig, output_dir: Path
) -> Assessment:
    tfdv = import_tfdv()

    found: list[Anomaly] = []
    for split, stats in statistics.items():
        previous = baseline.train_statistics if split == TRAIN else None
        result = tfdv.validate_statistics(stats, schema, previous_statistics=previous)
        tfdv.write_anomalies_text(result, str(output_dir / f"anomalies_{split}.pbtxt"))
        found.extend(checks.from_tfdv(result, split))
    counts = {split: checks.class_counts(stats) for split, stats in statistics.items()}
    found.extend(checks.missing_classes(schemas.string_domain(schema, f.LABEL_TEXT), counts[TRAIN]))
    found.extend(checks.few_images(counts[TRAIN], settings.min_images_per_class))
    found.extend(checks.empty_splits({split: stats.datasets[0].num_examples for split, stats in statistics.items()}))
    drift = None
    if baseline.train_statistics is not None:
        drift = checks.linf_distance(counts[TRAIN], checks.class_counts(baseline.train_statistics))
    has_errors = any(a.severity == ERROR for a in found)
    verdict = "failed" if has_errors and settings.policy == "fail" else ("warned" if found else "passed")
    return Assessment(found, counts, drift, verdict)


def _class_table(counts: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for split, per_class in counts.items():
        for label, count in per_class.items():
            table.setdefault(label, {})[split] = count
    return table


def _rejection(errors: list[Anomaly], policy: str) -> str:
    listed = "; ".join(f"{i}) {a.line()}" for i, a in enumerate(errors, start=1))
    return (
        f"data validation found {len(errors)} anomalies (validate.policy={policy}): {listed}; to train on this "
        "data anyway, rerun with --set validate.policy=warn (hubpipe.run(..., validate={'policy': 'warn'}))"
    )


def _log(outcome: Assessment) -> None:
    LOG.info("validate: %s, %d anomalies, %d warnings", outcome.verdict, len(outcome.errors), len(outcome.warnings))
    for anomaly in [*outcome.errors, *outcome.warnings]:
        LOG.info("  %s: %s", anomaly.severity, anomaly.line())
