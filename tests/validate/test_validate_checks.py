"""Validation checks, schema curation and the report, on hand-made statistics (no Beam)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubpipe.components.common import features as f
from hubpipe.components.validate import checks
from hubpipe.components.validate import schema as schemas
from hubpipe.components.validate.checks import ERROR, WARNING, Anomaly
from hubpipe.components.validate.report import ReportData, render_report
from hubpipe.pipeline.core.errors import ConfigError


def statistics(counts: dict[str, int]):
    from tensorflow_metadata.proto.v0 import statistics_pb2

    stats = statistics_pb2.DatasetFeatureStatisticsList()
    dataset = stats.datasets.add(num_examples=sum(counts.values()))
    feature = dataset.features.add(type=statistics_pb2.FeatureNameStatistics.STRING)
    feature.path.step.append(f.LABEL_TEXT)
    feature.string_stats.unique = len(counts)
    for label, count in counts.items():
        feature.string_stats.rank_histogram.buckets.add(label=label, sample_count=count)
        feature.string_stats.top_values.add(value=label, frequency=count)
    return stats


def test_class_counts_and_linf_distance() -> None:
    counts = checks.class_counts(statistics({"cat": 30, "dog": 10}))
    assert counts == {"cat": 30, "dog": 10}
    assert checks.linf_distance(counts, {"cat": 20, "dog": 20}) == pytest.approx(0.25)
    assert checks.linf_distance(counts, {"cat": 30, "dog": 10, "owl": 0}) == 0.0
    assert checks.linf_distance({"cat": 1}, {"dog": 1}) == 1.0


def test_missing_classes_few_images_and_empty_splits() -> None:
    (missing,) = checks.missing_classes(["cat", "dog", "owl"], {"cat": 3, "dog": 0})
    assert (missing.severity, missing.kind) == (ERROR, "missing_classes")
    assert "dog, owl" in missing.description
    assert checks.missing_classes(None, {"cat": 1}) == []
    (few,) = checks.few_images({"cat": 3, "dog": 12}, 10)
    assert (few.severity, few.kind) == (WARNING, "few_images_per_class")
    assert "cat (3)" in few.description and "dog" not in few.description
    assert [a.split for a in checks.empty_splits({"train": 4})] == ["test"]


def test_long_lists_in_anomalies_are_summarised() -> None:
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    labels = [f"class_{i:05d}" for i in range(10_000)]
    (missing,) = checks.missing_classes(labels, {})
    (few,) = checks.few_images(dict.fromkeys(labels, 1), 10)
    anomalies = anomalies_pb2.Anomalies()
    info = anomalies.anomaly_info[f.LABEL_TEXT]
    listed = ", ".join(f"{label} (<1%)" for label in labels)
    info.reason.add(
        type=anomalies_pb2.AnomalyInfo.ENUM_TYPE_UNEXPECTED_STRING_VALUES,
        description=f"Examples contain values missing from the schema: {listed}.",
    )
    (unexpected,) = checks.from_tfdv(anomalies, "train")
    assert missing.description.endswith(
        "(10,000): class_00000, class_00001, class_00002, class_00003, class_00004 ... and 9,995 more"
    )
    assert few.description.endswith(
        "(10,000): class_00000 (1), class_00001 (1), class_00002 (1), class_00003 (1), class_00004 (1) "
        "... and 9,995 more"
    )
    assert unexpected.description == (
        "Examples contain values missing from the schema (10,000): class_00000 (<1%), class_00001 (<1%), "
        "class_00002 (<1%), class_00003 (<1%), class_00004 (<1%) ... and 9,995 more"
    )
    assert max(len(a.line()) for a in (missing, few, unexpected)) < 250


def test_tfdv_anomalies_are_translated_to_readable_kinds() -> None:
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    anomalies = anomalies_pb2.Anomalies()
    info = anomalies.anomaly_info[f.LABEL_TEXT]
    info.severity = anomalies_pb2.AnomalyInfo.ERROR
    info.reason.add(type=anomalies_pb2.AnomalyInfo.ENUM_TYPE_UNEXPECTED_STRING_VALUES, description="owl")
    info.reason.add(type=anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH, description="0.4 > 0.2")
    image = anomalies.anomaly_info[f.IMAGE]
    image.severity = anomalies_pb2.AnomalyInfo.ERROR
    image.reason.add(type=anomalies_pb2.AnomalyInfo.MAX_IMAGE_BYTE_SIZE_EXCEEDED, description="big")
    found = checks.from_tfdv(anomalies, "train")
    assert [(a.kind, a.feature) for a in found] == [
        ("image_over_byte_limit", f.IMAGE),
        ("unexpected_classes", f.LABEL_TEXT),
        ("class_distribution_drift", f.LABEL_TEXT),
    ]
    assert found[1].line() == "unexpected_classes in train (label/text): owl"


def test_inferred_schema_is_curated(tmp_path: Path) -> None:
    import tensorflow_data_validation as tfdv

    stats = statistics({"cat": 30, "dog": 10})
    sha = stats.datasets[0].features.add(type=0)
    sha.path.step.append(f.SHA256)
    sha.string_stats.unique = 2
    sha.string_stats.rank_histogram.buckets.add(label="abc", sample_count=1)
    schema = schemas.infer_schema(stats, ["cat", "dog"], 1000)
    assert schemas.string_domain(schema, f.LABEL_TEXT) == ["cat", "dog"]
    assert schemas.string_domain(schema, f.SHA256) is None
    schemas.set_drift_threshold(schema, 0.3)
    assert tfdv.get_feature(schema, f.LABEL_TEXT).drift_comparator.infinity_norm.threshold == 0.3
    schemas.write_schema(schema, tmp_path / "schema.pbtxt")
    assert schemas.load_schema(tmp_path / "schema.pbtxt") == schema
    base = schemas.base_schema(1234)
    assert tfdv.get_feature(base, f.IMAGE).image_domain.max_image_byte_size == 1234


def test_a_broken_curated_schema_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "bad.pbtxt").write_text("feature { name: ")
    with pytest.raises(ConfigError, match="not a valid schema"):
        schemas.load_schema(tmp_path / "bad.pbtxt")
    with pytest.raises(ConfigError, match="cannot read"):
        schemas.load_schema(tmp_path / "missing.pbtxt")


def test_report_escapes_and_holds_every_section() -> None:
    anomaly = Anomaly(ERROR, "unexpected_classes", f.LABEL_TEXT, "<script>alert(1)</script>", "train")
    page = render_report(
        ReportData(
            verdict="failed",
            policy="fail",
            source="/data/<pets>",
            schema_origin="inferred",
            anomalies=[anomaly],
            class_counts={"cat": {"train": 3, "test": 1}},
            quarantine=[{"path": "cat/x.jpg", "reason": "truncated", "detail": "cut"}],
            statistics={"train": statistics({"cat": 3})},
        )
    )
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    for heading in ("Anomalies", "Class balance", "Quarantine", "Feature statistics", "failed (policy fail)"):
        assert heading in page
    assert "cat/x.jpg" in page and "truncated" in page
