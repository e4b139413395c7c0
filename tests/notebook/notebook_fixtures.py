"""The tiny run of the API, tracking and notebook tests: the Kubeflow end-to-end test's tiny dataset and backbone
(32 px images, 4 train / 2 test images per class, a 16-feature SavedModel), written as a YAML config file; and a
real MLflow tracking server for the tracking tests and benchmark."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import tiny_pipeline
from processes import free_port, stop_session

from hubpipe.pipeline.core.config import PipelineConfig, to_yaml


def tiny_config(root: Path) -> PipelineConfig:
    """The tiny configuration, publishing into ``root/published``; data and backbone made once under ``root``."""
    return tiny_pipeline.tiny_config(root, root / "published")


def tiny_config_file(root: Path) -> Path:
    """``tiny_config`` as a YAML file, as ``hubpipe run --config`` and ``hubpipe.run(config=...)`` take it."""
    path = root / "tiny.yaml"
    path.write_text(to_yaml(tiny_config(root)), encoding="utf-8")
    return path


@contextmanager
def mlflow_server(folder: Path, timeout_s: float = 120.0) -> Iterator[str]:
    """A real ``mlflow server`` on the loopback address (SQLite backend and artifact store in ``folder``),
    stopped on exit; yields its URI."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    store, artifacts = f"sqlite:///{folder / 'mlflow.db'}", str(folder / "artifacts")
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "1", "--backend-store-uri", store, "--artifacts-destination", artifacts]
    log = (folder / "server.log").open("wb")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    response.read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log_tail = (folder / "server.log").read_text()[-2000:]
                    raise RuntimeError(f"mlflow server did not start: {log_tail}") from None
                time.sleep(0.5)
        yield uri
    finally:
        stop_session(server)
        log.close()
