"""A training process killed with SIGKILL after an epoch resumes from its checkpoint on rerun and completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import train_fixtures

from hubpipe.components.train.core import train_models
from hubpipe.components.train.session import TrainRequest
from hubpipe.pipeline.core.cache_root import cache_root

HERE = Path(__file__).parent
EPOCHS = 4


def wait_for_line(process: subprocess.Popen, marker: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        if line.startswith(marker):
            return
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"the worker never printed {marker!r} (exit status {process.poll()})")


def test_kill_after_first_epoch_then_rerun_resumes_and_completes(
    tmp_path: Path, ingest_dir: Path, tiny_backbone: Path
) -> None:
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    (tmp_path / "killed").mkdir()
    args = [str(ingest_dir), str(tiny_backbone), str(tmp_path / "killed"), str(cache), str(EPOCHS)]
    process = subprocess.Popen(
        [sys.executable, str(HERE / "train_resume_worker.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        wait_for_line(process, "EPOCH_SAVED 0", timeout=300)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    (checkpoint,) = (cache / "checkpoints").iterdir()
    assert (checkpoint / "history.json").is_file() and (checkpoint / "backup").is_dir()

    config = train_fixtures.tiny_train_config(tiny_backbone, epochs=EPOCHS, baseline=False)
    output = tmp_path / "rerun"
    output.mkdir()
    outcome = train_models(TrainRequest(ingest_dir, output, cache, config, train_fixtures.SCRATCH_SIZE, cache_root()))

    (model,) = outcome.models
    assert model.resumed_from_epoch == 1
    record = json.loads((output / "models" / model.name / "model.json").read_text())
    assert [entry["epoch"] for entry in record["history"]] == list(range(EPOCHS))
    assert record["resumed_from_epoch"] == 1
    assert outcome.embeddings_cached == {model.name: True}  # the killed run had finished extracting
    assert not checkpoint.exists()
