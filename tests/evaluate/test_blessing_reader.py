"""blessing.json read back once, typed, by evaluate's layout: what publish, the report, the API and the KFP UI use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hubpipe.components.evaluate.layout import BLESSING_FILE, Blessing, Check, read_blessing
from hubpipe.components.publish.core import evaluated_blessing
from hubpipe.pipeline.core.errors import StageError, UsageError

RECORD = {
    "evaluation_id": "20261207-abc",
    "blessed": None,
    "blessed_model": None,
    "reasons": ["weak failed min_accuracy"],
    "thresholds": {"min_accuracy": 0.5},
    "checks": [
        {"candidate": "weak", "name": "min_accuracy", "value": 0.4, "threshold": 0.5, "passed": False, "detail": "x"}
    ],
    "candidates": [
        {"name": "weak", "model_key": "k1", "passed": False, "accuracy": 0.4},
        {"name": "better", "model_key": "k2", "passed": False, "accuracy": 0.45},
    ],
    "baselines": [{"name": "scratch_cnn", "accuracy": 0.2}],
    "reference": {"version": "v1", "method": "head", "skip_reason": "", "metrics": {"accuracy": 0.9}},
}


def write(folder: Path, record: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / BLESSING_FILE).write_text(json.dumps(record))
    return folder


def test_the_featured_model_is_the_blessed_one_else_the_most_accurate_candidate(tmp_path: Path) -> None:
    unblessed = read_blessing(write(tmp_path / "a", RECORD))
    assert unblessed.blessed is None and unblessed.featured == "better"
    blessed = Blessing.from_dict({**RECORD, "blessed": "weak"})
    assert blessed.featured == "weak"
    assert Blessing().featured is None


def test_gates_and_checks_are_typed(tmp_path: Path) -> None:
    blessing = read_blessing(write(tmp_path / "a", {**RECORD, "blessed": "better"}))
    assert [blessing.gate(name) for name in ("better", "weak", "scratch_cnn")] == ["blessed", "failed", "baseline"]
    assert blessing.checks == (Check("weak", "min_accuracy", 0.4, 0.5, False, "x"),)
    assert blessing.reference.metrics == {"accuracy": 0.9} and blessing.reference.version == "v1"
    assert blessing.record["baselines"][0]["name"] == "scratch_cnn"  # the file as written, kept whole


def test_an_older_record_without_latest_seen_takes_the_reference_version() -> None:
    assert Blessing.from_dict(RECORD).reference.latest_seen == "v1"
    newer = {**RECORD, "reference": {**RECORD["reference"], "latest_seen": None}}
    assert Blessing.from_dict(newer).reference.latest_seen is None


def test_no_evaluate_folder_or_file_reads_as_nothing_blessed(tmp_path: Path) -> None:
    assert read_blessing(None) == Blessing()
    assert read_blessing(tmp_path) == Blessing()


def test_a_damaged_file_is_one_line_naming_it(tmp_path: Path) -> None:
    folder = write(tmp_path / "a", {**RECORD, "candidates": {"not": "a list"}})
    with pytest.raises(UsageError, match=r"blessing\.json is not what hubpipe writes there"):
        read_blessing(folder)
    with pytest.raises(StageError, match=r"cannot read blessing\.json of the evaluate stage"):
        evaluated_blessing(folder)
    with pytest.raises(StageError, match="has no evaluation_id"):
        evaluated_blessing(write(tmp_path / "b", {**RECORD, "evaluation_id": ""}))
