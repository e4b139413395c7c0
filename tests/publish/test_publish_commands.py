"""``hubpipe tensorboard``: its help, and its errors as one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hubpipe.pipeline.cli import main


def test_commands_are_listed_without_importing_tensorflow() -> None:
    code = (
        "import sys; from hubpipe.pipeline.cli import main; main(['tensorboard', '--help']); "
        "main(['report', '--help']); assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--logdir" in result.stdout and "--port" in result.stdout and "RUN_DIR" in result.stdout


def test_tensorboard_without_published_logs_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("HUBPIPE_CACHE_DIR", str(tmp_path))
    assert main(["tensorboard"]) == 2
    assert f"no published logs at {tmp_path / 'published'}" in capsys.readouterr().err
