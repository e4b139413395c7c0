"""Wall time of `hubpipe run` on the embedded sample dataset without and with MLflow tracking, side by side.

Starts a real `mlflow server` on 127.0.0.1 (SQLite backend, local artifact store, in a temporary folder), runs
`hubpipe run` once untimed (it generates the sample dataset and builds the offline backbone into the hubpipe
cache), then times `hubpipe run` into a fresh run folder without tracking and into another with
`--set track.mlflow_uri=URI`, each as its own process, in alternating order (``--rounds`` times, 3 by default)
and keeps each side's median. Goal: overhead under 10%.

    python benchmarks/tracking.py [--rounds N]   # ends with: RESULT plain_s=... mlflow_s=... overhead=...
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
ROUNDS = 3
HUBPIPE = [sys.executable, "-m", "hubpipe.pipeline.cli"]


def timed_run(
    output: Path,
    *args: str,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> float:
    """Seconds of one `hubpipe run` into ``output`` (a new folder runs every stage; a copy of a run folder
    goes on after its finished stages); ``env`` replaces the environment, ``preexec_fn`` runs in the child
    before hubpipe starts (e.g. to set its CPU affinity)."""
    started = time.perf_counter()
    subprocess.run(
        [*HUBPIPE, "run", "--output", str(output), *args],
        check=True,
        capture_output=True,
        env=env,
        preexec_fn=preexec_fn,
    )
    return time.perf_counter() - started


def run_stages(output: Path) -> dict[str, dict]:
    """The stage records of the run.json in ``output``, by stage name."""
    return {stage["name"]: stage for stage in json.loads((output / "run.json").read_text())["stages"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="timed runs of each side (alternating order)")
    rounds = parser.parse_args().rounds
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.path[:0] = [str(TESTS / name) for name in ("notebook", "kubeflow", "fixtures")]  # as pytest puts them
    from notebook_fixtures import mlflow_server

    with tempfile.TemporaryDirectory(prefix="hubpipe-bench-tracking-") as tmp:
        root = Path(tmp)
        logging.info("warm-up run (sample dataset and offline backbone into the cache)")
        timed_run(root / "warm-up")
        plain, tracked = [], []
        with mlflow_server(root / "mlflow") as uri:
            for index in range(rounds):
                order = ("plain", "mlflow") if index % 2 == 0 else ("mlflow", "plain")
                for kind in order:
                    if kind == "plain":
                        plain.append(timed_run(root / f"plain-{index}"))
                    else:
                        tracked.append(timed_run(root / f"mlflow-{index}", "--set", f"track.mlflow_uri={uri}"))
                        tracking = json.loads((root / f"mlflow-{index}" / "run.json").read_text())["tracking"]
                        if tracking["status"] != "logged":
                            raise SystemExit(f"tracking did not log: {tracking}")
                    logging.info("%s: %.1f s", kind, (plain if kind == "plain" else tracked)[-1])
    plain_s, mlflow_s = statistics.median(plain), statistics.median(tracked)
    print(f"RESULT plain_s={plain_s:.1f} mlflow_s={mlflow_s:.1f} overhead={(mlflow_s - plain_s) / plain_s:.3f}")


if __name__ == "__main__":
    main()
