"""One run per output folder, leftovers of killed runs, and run.json's process for `hubpipe report`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import fake_stages
import pytest

from hubpipe.pipeline.core.config import load_config
from hubpipe.pipeline.core.errors import UsageError
from hubpipe.pipeline.core.locking import RunLock, owned_tmp, remove_dead_tmp, run_in_progress
from hubpipe.pipeline.local_runner import run_pipeline
from hubpipe.pipeline.report.page import render_report

HOLD = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from hubpipe.pipeline.core.locking import RunLock, owned_tmp\n"
    "kind, path = sys.argv[1], Path(sys.argv[2])\n"
    "if kind == 'run':\n"
    "    held = RunLock(path).acquire()\n"
    "else:\n"
    "    held = owned_tmp(path)\n"
    "    held.__enter__()\n"
    "    path.mkdir()\n"
    "print('held', flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.fixture
def holder() -> Iterator:
    """Starts a process that holds a run lock ('run', DIR) or owns a temporary folder ('tmp', PATH)."""
    started: list[subprocess.Popen] = []

    def start(kind: str, path: Path) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", HOLD, kind, str(path)], stdout=subprocess.PIPE, text=True)
        started.append(process)
        assert process.stdout.readline().strip() == "held"
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def test_a_second_run_into_a_busy_folder_stops_and_leaves_the_live_run_alone(
    tmp_path: Path, counts: Path, holder
) -> None:
    out = tmp_path / "run"
    live = holder("run", out)
    live_tmp = out / f".tmp-ingest-{live.pid}"
    live_tmp.mkdir()
    (live_tmp / "listing.jsonl").write_text("{}\n")

    with pytest.raises(UsageError, match=rf"another run \(pid {live.pid}\) is using {out}") as raised:
        run_pipeline(load_config(), out, fake_stages.CHAIN)
    assert raised.value.exit_code == 2
    assert (live_tmp / "listing.jsonl").is_file(), "the live run's temporary folder must survive"


def test_the_lock_of_a_killed_run_never_blocks_and_its_leftovers_are_removed(
    tmp_path: Path, counts: Path, holder
) -> None:
    out = tmp_path / "run"
    dead = holder("run", out)
    vectors = out / "cache" / "embeddings" / "k"  # the feature-vector cache stages and retires split folders
    for leftover in (out / f".tmp-train-{dead.pid}", out / ".old-ingest-7", out / "cache" / "embeddings" / ".k.tmp-9"):
        leftover.mkdir(parents=True)
    for leftover in (vectors / ".tmp-test-9", vectors / ".old-train-9"):
        leftover.mkdir(parents=True)
    (out / "cache" / "checkpoints").mkdir(parents=True)
    (out / "cache" / "checkpoints" / ".history.json.x1y2.tmp").write_text("{")
    dead.send_signal(signal.SIGKILL)
    dead.wait()

    report = run_pipeline(load_config(), out, fake_stages.CHAIN)
    assert report.status == "succeeded"
    assert not list(out.glob(".tmp-*")) and not list(out.glob(".old-*"))
    assert sorted(p.name for p in (out / "cache").rglob("*")) == ["checkpoints", "embeddings", "k"]
    assert not run_in_progress(out)


def test_run_json_names_the_process_and_the_report_says_interrupted(tmp_path: Path, counts: Path, holder) -> None:
    out = tmp_path / "run"
    run_pipeline(load_config(), out, fake_stages.CHAIN)
    record = json.loads((out / "run.json").read_text())
    assert record["process"]["pid"] == os.getpid() and record["process"]["started"]

    record["status"] = "running"  # what a run killed with SIGKILL leaves
    (out / "run.json").write_text(json.dumps(record))
    assert ">interrupted<" in render_report(out) and f"pid {os.getpid()}" in render_report(out)

    live = holder("run", out)  # while a process holds the folder, the run is really running
    assert run_in_progress(out)
    assert ">running<" in render_report(out)
    live.kill()
    live.wait()
    assert not run_in_progress(out)


def test_cache_temporaries_are_removed_only_when_their_owner_is_dead(tmp_path: Path, holder) -> None:
    cache = tmp_path / "extracted"
    alive = holder("tmp", cache / ".alive.tmp-1")
    dead = holder("tmp", cache / ".dead.tmp-2")
    dead.kill()
    dead.wait()
    (cache / ".legacy.tmp-3").mkdir()  # left by a version that wrote no owner lock
    (cache / "final").mkdir()

    removed = remove_dead_tmp(cache, ".*.tmp-*")
    assert sorted(p.name for p in removed) == [".dead.tmp-2", ".legacy.tmp-3"]
    assert sorted(p.name for p in cache.iterdir()) == [".alive.tmp-1", ".alive.tmp-1.lock", "final"]
    assert alive.poll() is None


def test_owned_tmp_removes_its_folder_and_lock_however_it_ends(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), owned_tmp(tmp_path / ".x.tmp-1") as tmp:
        tmp.mkdir()
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_run_lock_is_exclusive_within_one_process_too(tmp_path: Path) -> None:
    with RunLock(tmp_path), pytest.raises(UsageError, match="another run"):
        RunLock(tmp_path).acquire()
    with RunLock(tmp_path):
        pass
