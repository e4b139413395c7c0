"""What the Python API prints: the same progress on every call of a process (a notebook's kernel calls it many
times), and none of the libraries' notices unless ``debug=True``."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from notebook_fixtures import tiny_config_file

from hubpipe.pipeline.core.log_setup import call_logging

SECOND_CALL = "=== second call"
#: What the libraries print when nothing hides it (issue 24): none may reach the API's stderr by default.
LIBRARY_NOISE = ("FutureWarning", "crcmod", "Interactive", "retracing", "cuDNN", "cuFFT", "cuBLAS", "UserWarning")

SCRIPT = f"""
import sys
import hubpipe

config, output = sys.argv[1], sys.argv[2]
hubpipe.run(config=config, output=output)
print({SECOND_CALL!r}, file=sys.stderr, flush=True)
hubpipe.run(config=config, output=output, epochs=3)  # ingest and validate cached, the rest runs again
"""


@pytest.mark.e2e
@pytest.mark.slow
def test_two_calls_in_one_process_both_show_progress_and_no_library_noise(tmp_path: Path) -> None:
    config = tiny_config_file(tmp_path)
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(config), str(tmp_path / "run")],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = result.stderr.split(SECOND_CALL)
    for stage in ("ingest", "validate", "train", "evaluate", "publish"):
        assert f"[{stage}] running" in first
    assert "scratch_cnn epoch 1/1" in first and "backbone epoch 2/2" in first
    assert "[ingest] cached" in second and "[validate] cached" in second
    assert "[train] running" in second and "backbone epoch 3/3" in second
    assert "from the cache: ingest, validate; ran: train, evaluate, publish (run run-" in second
    assert "INFO:" not in result.stderr and "WARNING:" not in result.stderr  # no logging.basicConfig format
    noise = [line for line in result.stderr.splitlines() if any(word in line for word in LIBRARY_NOISE)]
    assert not noise, noise


def test_call_logging_hides_library_notices_only_during_the_call(capsys: pytest.CaptureFixture[str]) -> None:
    library = logging.getLogger("tensorflow")
    level, root_handlers = library.level, list(logging.getLogger().handlers)
    with call_logging():
        assert library.level >= logging.ERROR
        logging.getLogger("hubpipe.test").info("stage line")
        library.warning("5 out of the last 5 calls triggered tf.function retracing")
        logging.warning("crcmod package not found. This package is required ...")
        warnings.warn_explicit("a google notice", FutureWarning, "x.py", 1, module="google.api_core")
    err = capsys.readouterr().err
    assert err == "stage line\n"
    assert library.level == level and logging.getLogger().handlers == root_handlers
    with pytest.warns(FutureWarning, match="a google notice"):  # filters restored after the call
        warnings.warn_explicit("a google notice", FutureWarning, "x.py", 2, module="google.api_core")


def test_debug_shows_everything(capsys: pytest.CaptureFixture[str]) -> None:
    library = logging.getLogger("tensorflow")
    level = library.level
    with call_logging(debug=True):
        logging.getLogger("hubpipe.test").debug("details")
        assert library.level == level  # left as it is (quiet, it is raised to ERROR)
        with pytest.warns(FutureWarning):
            warnings.warn_explicit("a google notice", FutureWarning, "x.py", 3, module="google.api_core")
    assert "DEBUG hubpipe.test: details" in capsys.readouterr().err
