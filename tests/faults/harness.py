"""Fault injection: kill ``hubpipe run`` at a crash point or at a moment, or make a write fail there (ENOSPC,
EIO), and check what a rerun recovers.

Shared by ``tests/faults/`` and ``benchmarks/faults.py``. A run is killed in a child process (the crash point
SIGKILLs it, or the harness does) or fails there on an injected I/O error; the checks look at the run folder,
the publish root and the source cache.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

from hubpipe.components.common import publish_root as layout
from hubpipe.pipeline.core.crashpoints import ENV_VAR, Target
from hubpipe.pipeline.core.execution import MANIFEST, killed_run_leftovers
from hubpipe.pipeline.core.run_folder import RUN_FILE
from hubpipe.pipeline.stages import stage_names

STAGES = stage_names()
#: The first stage removed from the uninterrupted run before a run killed at a crash point, so that the killed
#: run reaches the point. Without an entry every stage is kept: a run into a new publish root reruns evaluate
#: (replacing its folder) and publish anyway.
RESTART_FROM = {
    "ingest.in_extraction": "ingest",
    "ingest.after_records": "ingest",
    "train.after_checkpoint": "train",
}
#: The installed command, as a user runs it (``python -c`` would put the working folder on sys.path).
HUBPIPE = [str(Path(sys.executable).with_name("hubpipe"))]


class RunFailed(RuntimeError):
    """``hubpipe run`` exited with an error status (neither 0 nor killed)."""


def hubpipe_run(config_file: Path, output: Path, env: dict[str, str], kill_after: float | None = None) -> int:
    """Runs ``hubpipe run`` in a child process; returns 0, or -9 when it was killed; raises :class:`RunFailed`."""
    status, stderr = hubpipe_outcome(config_file, output, env, kill_after)
    if status not in (0, -signal.SIGKILL):
        raise RunFailed(f"hubpipe run exited with {status}: {stderr[-2000:]}")
    return status


def hubpipe_outcome(
    config_file: Path, output: Path, env: dict[str, str], kill_after: float | None = None, wrap: Sequence[str] = ()
) -> tuple[int, str]:
    """``hubpipe run``'s exit status (-9 when killed after ``kill_after`` seconds) and its stderr; ``wrap`` is a
    command prefix (e.g. a mount namespace)."""
    command = [*wrap, *HUBPIPE, "run", "--config", str(config_file), "--output", str(output)]
    child = subprocess.Popen(
        command, env=env, cwd=output.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        _, stderr = child.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGKILL)
        _, stderr = child.communicate()
    return child.returncode, stderr or ""


def one_line_error(stderr: str) -> str | None:
    """The ``error:`` line a failed run ends with, when it printed exactly one and no traceback; else None."""
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    lines = [line for line in stderr.splitlines() if line.strip()]
    if "Traceback" in stderr or len(errors) != 1 or lines[-1] != errors[0]:
        return None
    return errors[0]


def zip_images(folder: Path, archive: Path) -> Path:
    """The ``*.jpg`` files under ``folder`` (class-per-folder dataset) as the .zip ``archive``, in sorted order."""
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(folder.rglob("*.jpg")):
            bundle.write(path, path.relative_to(folder).as_posix())
    return archive


def copy_run(reference: Path, run_dir: Path, restart: str | None, without: Sequence[str] = ()) -> None:
    """A copy of the run folder ``reference`` without the stage ``restart`` and the stages after it (None: all
    kept), nor the entries ``without``; ``run_dir`` may exist (e.g. as a mount point) if it is empty."""
    left_out = {*without, *(STAGES[STAGES.index(restart) :] if restart is not None else ())}
    shutil.copytree(
        reference, run_dir, ignore=lambda folder, _: left_out if folder == str(reference) else (), dirs_exist_ok=True
    )


def crash_env(point: str | Target | None, cache_dir: Path) -> dict[str, str]:
    """The environment of a run that is killed at ``point`` (or meets the fault a :class:`Target` names)."""
    env = {key: value for key, value in os.environ.items() if key != ENV_VAR}
    env["HUBPIPE_CACHE_DIR"] = str(cache_dir)
    if point:
        env[ENV_VAR] = point.value() if isinstance(point, Target) else point
    return env


def artifact_kinds(run_dir: Path) -> dict[str, list[str]]:
    """Every stage folder's files, with the digits of names (times, pids, ids) replaced by ``N``."""
    kinds = {}
    for stage in STAGES:
        folder = Path(run_dir) / stage
        files = {re.sub(r"\d+", "N", str(path.relative_to(folder))) for path in folder.rglob("*") if path.is_file()}
        kinds[stage] = sorted(files)
    return kinds


def leftovers(run_dir: Path, publish_root: Path, cache_dir: Path) -> list[str]:
    """What only a killed process leaves: temporary folders and files, lock files of temporaries."""
    run_dir, publish_root, cache_dir = Path(run_dir), Path(publish_root), Path(cache_dir)
    found = killed_run_leftovers(run_dir, STAGES)
    found += layout.killed_publish_leftovers(str(publish_root))
    found += [p for p in cache_dir.rglob("*") if re.search(r"\.tmp-\d+(\.lock)?$", p.name)]
    return sorted(str(path) for path in found)


def latest_problem(run_dir: Path, publish_root: Path) -> str | None:
    """None when LATEST names a complete version blessed by this run's evaluation; else what is wrong."""
    blessing = json.loads((Path(run_dir) / "evaluate" / "blessing.json").read_text())
    latest_id = layout.read_latest_id(str(publish_root))
    latest = layout.read_version(str(publish_root), latest_id) if latest_id else None
    if latest is None:
        return f"LATEST ({layout.read_latest_id(str(publish_root))}) names no complete version"
    if blessing.get("blessed") and latest.version != blessing["evaluation_id"]:
        return f"LATEST is {latest.version}, the run blessed {blessing['evaluation_id']}"
    folder = Path(latest.path)
    expected = ("blessing.json", "labels.txt", "model.json", "serving", layout.VERSION_FILE)
    missing = [name for name in expected if not (folder / name).exists()]
    return f"version {latest.version} lacks {missing}" if missing else None


def examples_written(run_dir: Path) -> int:
    return int(json.loads((Path(run_dir) / "ingest" / MANIFEST).read_text())["results"]["examples_written"])


def ingest_counts(run_dir: Path) -> tuple[int, int]:
    """Examples written and files quarantined, as run.json's ingest results record them ((0, 0) without)."""
    try:
        stages = json.loads((Path(run_dir) / RUN_FILE).read_text())["stages"]
        results = next(stage["results"] for stage in stages if stage["name"] == "ingest")
        return int(results["examples_written"]), int(results["quarantined"])
    except (OSError, ValueError, KeyError, StopIteration):
        return 0, 0
