"""A cached stage is reused only when its files are the ones its manifest recorded; a damaged stage reruns."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import fake_stages
import pytest

from hubpipe.pipeline.core.config import load_config
from hubpipe.pipeline.core.execution import MANIFEST, damaged_file, read_manifest
from hubpipe.pipeline.local_runner import run_pipeline


def statuses(report) -> dict[str, str]:
    return {record.name: record.status for record in report.stages}


def flip_one_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if offset is None else offset
    data[at] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.fixture
def finished(tmp_path: Path, counts: Path) -> Path:
    out = tmp_path / "run"
    assert run_pipeline(load_config(), out, fake_stages.CHAIN).status == "succeeded"
    return out


def test_the_manifest_records_size_and_sha256_of_every_file(finished: Path) -> None:
    files = read_manifest(finished / "validate")["files"]
    assert sorted(files) == ["partial.txt", "value.txt"]
    assert files["value.txt"]["bytes"] == len((finished / "validate" / "value.txt").read_bytes())
    assert len(files["value.txt"]["sha256"]) == 64
    assert damaged_file(finished / "validate", read_manifest(finished / "validate")) is None


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (flip_one_byte, "value.txt is damaged (its sha256 differs from the one recorded when written)"),
        (lambda path: path.write_bytes(path.read_bytes()[:-1]), "value.txt is damaged (8 bytes, 9 when written)"),
        (lambda path: path.unlink(), "value.txt is missing"),
    ],
    ids=["one-byte", "truncated", "missing"],
)
def test_a_damaged_stage_reruns_with_one_line_naming_the_file(
    finished: Path, damage, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    damage(finished / "ingest" / "value.txt")
    with caplog.at_level(logging.INFO, logger="hubpipe"):
        report = run_pipeline(load_config(), finished, fake_stages.CHAIN)
    assert statuses(report) == {"ingest": "ran", "validate": "cached", "train": "cached"}
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [f"[ingest] not reused: {said}"]
    assert (finished / "ingest" / "value.txt").read_text() == "ingest=5;"
    # the same bytes as before: the stages that read them stay valid; a damaged downstream stage reruns alone
    flip_one_byte(finished / "train" / "partial.txt", offset=0)
    assert statuses(run_pipeline(load_config(), finished, fake_stages.CHAIN)) == {
        "ingest": "cached", "validate": "cached", "train": "ran"
    }  # fmt: skip


def test_a_rerun_stage_whose_files_came_out_different_reruns_its_readers(
    finished: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flip_one_byte(finished / "ingest" / "value.txt")
    monkeypatch.setenv("FAKE_STAGE_NOISE", " at 12:00")  # not in the fingerprint, like a report's timestamp
    report = run_pipeline(load_config(), finished, fake_stages.CHAIN)
    assert statuses(report) == {"ingest": "ran", "validate": "ran", "train": "ran"}


def test_a_manifest_without_digests_is_not_trusted_once(finished: Path) -> None:
    manifest = json.loads((finished / "validate" / MANIFEST).read_text())
    del manifest["files"]  # as hubpipe wrote manifests before it recorded digests
    (finished / "validate" / MANIFEST).write_text(json.dumps(manifest))
    assert "records no file digests" in damaged_file(finished / "validate", manifest)
    first = run_pipeline(load_config(), finished, fake_stages.CHAIN)
    assert statuses(first) == {"ingest": "cached", "validate": "ran", "train": "cached"}
    assert set(statuses(run_pipeline(load_config(), finished, fake_stages.CHAIN)).values()) == {"cached"}


def test_a_manifest_naming_files_outside_its_folder_is_not_trusted(finished: Path) -> None:
    manifest = read_manifest(finished / "ingest")
    manifest["files"]["../validate/value.txt"] = read_manifest(finished / "validate")["files"]["value.txt"]
    assert "lists files it cannot describe" in damaged_file(finished / "ingest", manifest)
