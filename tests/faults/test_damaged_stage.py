"""A finished run whose TFRecord shard was damaged afterwards: the rerun notices, reruns ingest and succeeds.

Before stage folders were verified, every stage was reported cached, and once training had to read the
examples again (here: one more epoch) every plain rerun failed with a DataLossError.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from tiny_pipeline import tiny_config

from hubpipe.components.common.features import EXAMPLES_DIR
from hubpipe.pipeline.core.config import replace
from hubpipe.pipeline.core.execution import damaged_file, read_manifest
from hubpipe.pipeline.local_runner import run_pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_corrupted_tfrecord_shard_reruns_ingest_and_the_run_succeeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tiny_config(tmp_path, tmp_path / "published")
    config = replace(config, train=replace(config.train, baseline=False))
    run_dir = tmp_path / "run"
    assert run_pipeline(config, run_dir, until="train").status == "succeeded"
    shard = sorted((run_dir / "ingest" / EXAMPLES_DIR).glob("train-*.tfrecord"))[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))

    more_epochs = replace(config, train=replace(config.train, epochs=config.train.epochs + 1))
    with caplog.at_level(logging.INFO, logger="hubpipe"):
        report = run_pipeline(more_epochs, run_dir, until="train")
    assert report.status == "succeeded"
    assert {record.name: record.status for record in report.stages} == {
        "ingest": "ran", "validate": "cached", "train": "ran"
    }  # fmt: skip
    damaged = [r.getMessage() for r in caplog.records if "not reused" in r.getMessage()]
    assert damaged == [f"[ingest] not reused: {EXAMPLES_DIR}/{shard.name} is damaged (its sha256 differs from the "
                       "one recorded when written)"]  # fmt: skip
    assert damaged_file(run_dir / "ingest", read_manifest(run_dir / "ingest")) is None
