"""Crash and I/O-fault recovery of the whole pipeline on the sample dataset: SIGKILL at every crash point and at
random moments, an injected ENOSPC and EIO at every crash point, and full disks under the source cache, the run
folder and the publish root.

One uninterrupted ``hubpipe run`` (the sample dataset as a .zip, so that extraction is part of the pipeline;
offline EfficientNet-Lite0; 2 epochs; thresholds every model passes, so that every run publishes) gives the
reference run folder and the stages' durations. Then, for every fault, a copy of that folder with the stages
from a chosen one onwards removed is run again into a new publish root and

* killed (by the crash point, or by the benchmark at a random time within the remaining stages' duration), or
* meets an injected I/O error at a crash point (``HUBPIPE_CRASH_AT=POINT:1:enospc`` or ``:eio``), which must
  end the run with a non-zero status and one ``error:`` line, or
* runs with one folder on a small tmpfs (the benchmark runs in a mount namespace of its own, as root), which
  must end the same way; the tmpfs is then enlarged. The run folder's and the publish root's get about half
  of what they need. The source extraction's holds the sample's extraction plus 1 MiB, and the archive has
  its last three images padded to 2 MiB (still valid JPEGs), so that only they meet the full disk, as in
  issue 22's report,

and rerun without a fault. Each rerun must exit 0, hold the same kinds of files as the reference, keep every
example, leave LATEST on the complete version it blessed, and leave nothing temporary behind (run folder,
publish root, caches). ``silent_data_loss`` counts the runs that exited 0 with fewer examples, or more
quarantined files, than the reference (run.json's ingest results).

    python benchmarks/faults.py [--random 16] [--seed 0] [--io-errors enospc,eio] [--no-full-disks]
    # ends with: RESULT kills=N recovered=N io_faults=N io_failed_cleanly=N io_recovered=N wrong_latest=0
    #            leftovers=0 lost_examples=0 silent_data_loss=0
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "faults"))

import harness  # the fault-injection tests' checks

from hubpipe.components.common.vector_store import STORE_DIR
from hubpipe.pipeline.core.config import load_config, to_yaml
from hubpipe.pipeline.core.crashpoints import CRASH_POINTS, IO_ERRORS, Target

LOG = logging.getLogger("faults")

SETTINGS = {
    "train.epochs": 2,
    "train.baseline_epochs": 1,
    "evaluate.min_accuracy": 0.0,
    "evaluate.min_margin_over_baseline": -1.0,
    "evaluate.max_drop_vs_blessed": 1.0,
}
START_UP_S = 8.0  # imports before the first stage starts, roughly; random kills also land there
#: Set in the benchmark's own mount namespace (see :func:`enter_mount_namespace`).
NAMESPACE_ENV = "HUBPIPE_FAULTS_NAMESPACE"
#: The folders a full-disk fault puts on a small tmpfs, with the stage the run restarts from.
FULL_DISKS = {"extraction": "ingest", "run folder": "ingest", "publish root": "publish"}


@dataclass
class Tally:
    kills: int = 0
    recovered: int = 0
    io_faults: int = 0
    io_failed_cleanly: int = 0
    io_recovered: int = 0
    wrong_latest: int = 0
    leftovers: int = 0
    lost_examples: int = 0
    silent_data_loss: int = 0
    notes: list[str] = field(default_factory=list)

    def result(self) -> str:
        counts = {name: value for name, value in vars(self).items() if name != "notes"}
        return "RESULT " + " ".join(f"{name}={value}" for name, value in counts.items())


@dataclass(frozen=True)
class Fault:
    label: str
    restart: str | None  # the first stage removed from the reference copy (None: evaluate and publish rerun)
    point: str | None = None  # a crash point that SIGKILLs, or None
    after_s: float | None = None  # a kill after this many seconds
    io_error: Target | None = None  # an injected I/O error at a crash point
    full_disk: str | None = None  # a key of FULL_DISKS

    @property
    def is_kill(self) -> bool:
        return self.io_error is None and self.full_disk is None


@dataclass(frozen=True)
class Inputs:
    reference: Path  # the uninterrupted run folder
    source: Path  # the sample dataset's archive
    padded: Path  # the same with its last members padded (see :func:`padded_archive`)
    cache: Path  # HUBPIPE_CACHE_DIR of every run
    counts: tuple[int, int]  # the reference's examples written and files quarantined
    disk_bytes: dict[str, int]  # the size of the small disk under each folder of FULL_DISKS


def prepare(reference: Path, run_dir: Path, restart: str | None, cache: Path) -> None:
    """A copy of the reference run with ``restart`` and the stages after it removed; the run folder's cache and
    the vector store too when training restarts (the feature pass runs again), the extracted archive when
    ingest does."""
    first = harness.STAGES.index(restart) if restart else len(harness.STAGES)
    harness.copy_run(reference, run_dir, restart, without=("cache",) if first <= harness.STAGES.index("train") else ())
    if first <= harness.STAGES.index("train"):
        shutil.rmtree(cache / STORE_DIR, ignore_errors=True)
    if first == 0:
        extracted = cache / "sources" / "extracted"
        for entry in extracted.iterdir() if extracted.is_dir() else []:  # the folder may be a mount point
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def run_or_fail(config_file: Path, run_dir: Path, env: dict[str, str], kill_after: float | None = None) -> int:
    """``hubpipe run``'s status: 0, -9 when killed, 1 when it failed (logged)."""
    try:
        return harness.hubpipe_run(config_file, run_dir, env, kill_after=kill_after)
    except harness.RunFailed as exc:
        LOG.error("%s", exc)
        return 1


def write_config(path: Path, source: Path, root: Path) -> Path:
    path.write_text(to_yaml(load_config(overrides={**SETTINGS, "data.source": str(source), "publish.root": str(root)})))
    return path


def lost_data(run_dir: Path, inputs: Inputs) -> bool:
    """True when the run's ingest wrote fewer examples or quarantined more files than the reference's."""
    written, quarantined = harness.ingest_counts(run_dir)
    return written < inputs.counts[0] or quarantined > inputs.counts[1]


@dataclass(frozen=True)
class Trial:
    """One fault's run folder, publish root and configuration file."""

    run_dir: Path
    root: Path
    config_file: Path

    @classmethod
    def prepared(cls, work: Path, fault: Fault, inputs: Inputs) -> Trial:
        trial = cls(work / "run", work / "published", work / "config.yaml")
        prepare(inputs.reference, trial.run_dir, fault.restart, inputs.cache)
        source = inputs.padded if fault.full_disk == "extraction" else inputs.source
        write_config(trial.config_file, source, trial.root)
        return trial


def check_rerun(fault: Fault, trial: Trial, inputs: Inputs, tally: Tally) -> bool:
    """Reruns without a fault and counts what the rerun got right; True when it recovered everything."""
    run_dir, root = trial.run_dir, trial.root
    status = run_or_fail(trial.config_file, run_dir, harness.crash_env(None, inputs.cache))
    same_kinds = status == 0 and harness.artifact_kinds(run_dir) == harness.artifact_kinds(inputs.reference)
    latest = harness.latest_problem(run_dir, root) if status == 0 else "the rerun failed"
    left = harness.leftovers(run_dir, root, inputs.cache)
    lost = status != 0 or harness.examples_written(run_dir) != harness.examples_written(inputs.reference)
    silent = status == 0 and lost_data(run_dir, inputs)
    tally.wrong_latest += latest is not None
    tally.leftovers += bool(left)
    tally.lost_examples += lost
    tally.silent_data_loss += silent
    LOG.info("%-40s rerun %d, kinds %s, latest %s, leftovers %s", fault.label, status, same_kinds, latest or "ok", left)
    return same_kinds and latest is None and not left and not lost


def check_kill(fault: Fault, work: Path, inputs: Inputs, tally: Tally) -> None:
    """Kills a run as ``fault`` says, reruns it, and counts what the rerun got right."""
    trial = Trial.prepared(work, fault, inputs)
    env = harness.crash_env(fault.point, inputs.cache)
    status = run_or_fail(trial.config_file, trial.run_dir, env, fault.after_s)
    if status == 0:
        LOG.info("%-40s finished before the kill; not counted", fault.label)
        tally.silent_data_loss += lost_data(trial.run_dir, inputs)
        return
    tally.kills += 1
    if status != -9:
        LOG.info("%-40s failed before the kill: not recovered", fault.label)
        return
    tally.recovered += check_rerun(fault, trial, inputs, tally)


def check_io_fault(fault: Fault, work: Path, inputs: Inputs, tally: Tally) -> None:
    """Runs with an injected I/O error or a full disk: the run must fail with one line; then a rerun (on an
    enlarged disk) must recover everything."""
    disk = {"extraction": inputs.cache / "sources" / "extracted", "run folder": work / "run"}
    folder = {**disk, "publish root": work / "published"}.get(fault.full_disk or "")
    with small_disk(folder, inputs.disk_bytes.get(fault.full_disk or "", 0)):
        trial = Trial.prepared(work, fault, inputs)
        run_dir = trial.run_dir
        env = harness.crash_env(fault.io_error, inputs.cache)
        status, stderr = harness.hubpipe_outcome(trial.config_file, run_dir, env)
        tally.io_faults += 1
        line = harness.one_line_error(stderr) if status not in (0, -9) else None
        tally.io_failed_cleanly += line is not None
        if status == 0:
            silent = lost_data(run_dir, inputs)
            tally.silent_data_loss += silent
            written, quarantined = harness.ingest_counts(run_dir)
            note = f"{fault.label}: exited 0 ({written} examples, {quarantined} quarantined)"
            tally.notes.append(note + (": silent data loss" if silent else ": the fault went unreported"))
        elif line is None:
            tally.notes.append(f"{fault.label}: exited {status} without one error line: {stderr[-600:]!r}")
        LOG.info("%-40s exited %d: %s", fault.label, status, line or stderr.strip().splitlines()[-1:])
        if folder is not None:
            enlarge(folder)
        tally.io_recovered += check_rerun(fault, trial, inputs, tally)


def enter_mount_namespace() -> bool:
    """Re-executes the benchmark in a private mount namespace (so that it can mount small tmpfs folders that
    nobody else sees, gone when it ends); False when that is not possible here (not root, no ``unshare``)."""
    if os.environ.get(NAMESPACE_ENV) == "1":
        return True
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return False
    os.environ[NAMESPACE_ENV] = "1"
    os.execvp("unshare", ["unshare", "--mount", "--propagation", "private", sys.executable, *sys.argv])
    return True  # not reached


@contextlib.contextmanager
def small_disk(folder: Path | None, size_bytes: int) -> Iterator[None]:
    """Puts ``folder`` on a tmpfs of ``size_bytes`` for the duration (nothing when ``folder`` is None)."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    size_kib = max(size_bytes // 1024, 64)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(folder)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)


def enlarge(folder: Path) -> None:
    """The disk under ``folder`` grows to 4 GiB (tmpfs pages are only used when written)."""
    subprocess.run(["mount", "-o", "remount,size=4g", str(folder)], check=True)


def disk_usage(folder: Path) -> int:
    """The bytes the files under ``folder`` take on disk (whole blocks, as on a tmpfs: whole pages)."""
    return sum(path.stat().st_blocks * 512 for path in folder.rglob("*") if path.is_file())


def sample_archive(folder: Path) -> Path:
    """The embedded sample dataset as a .zip."""
    from hubpipe.data.sample import generate

    return harness.zip_images(generate(folder / "sample"), folder / "sample.zip")


def padded_archive(source: Path, target: Path, members: int = 3, size: int = 2 * 1024**2) -> Path:
    """``source`` with its last ``members`` images padded with zero bytes to ``size`` (JPEG decoders stop at the
    end-of-image marker), the last ones extracted."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as padded:
        infos = original.infolist()
        for index, info in enumerate(infos):
            data = original.read(info)
            padded.writestr(info.filename, data.ljust(size, b"\0") if index >= len(infos) - members else data)
    return target


def random_kill(index: int, durations: dict[str, float], rng: random.Random) -> Fault:
    """A kill at a random moment of a run that restarts at a random stage."""
    restart = rng.choice(harness.STAGES)
    remaining = START_UP_S + sum(durations[s] for s in harness.STAGES[harness.STAGES.index(restart) :])
    remaining += durations["evaluate"] + durations["publish"] if restart == "publish" else 0.0
    after = round(rng.uniform(0.5, 0.7 * remaining), 2)  # the reference ran under the same load plus start-up
    return Fault(f"random {index}: {restart} + {after:.1f} s", restart, after_s=after)


def run_kills(count: int, seed: int, inputs: Inputs, base: Path, tally: Tally) -> None:
    """Every crash point, then random kills until ``count`` of them hit a running process (at most 3x tries)."""
    stages = json.loads((inputs.reference / "run.json").read_text())["stages"]
    durations = {record["name"]: record["duration_s"] for record in stages}
    rng = random.Random(seed)
    kills = [Fault(point, harness.RESTART_FROM.get(point), point=point) for point in CRASH_POINTS]
    for index in range(len(CRASH_POINTS) + 3 * count):
        if index >= len(kills) and tally.kills >= len(CRASH_POINTS) + count:
            break
        kill = kills[index] if index < len(kills) else random_kill(index - len(kills) + 1, durations, rng)
        with work_folder(base, f"kill-{index:02d}") as work:
            check_kill(kill, work, inputs, tally)


def io_faults(actions: list[str], full_disks: bool) -> list[Fault]:
    """An injected I/O error of each kind at every crash point, then the full disks."""
    faults = [
        Fault(f"{action} at {point}", harness.RESTART_FROM.get(point), io_error=Target(point, 1, action))
        for point in CRASH_POINTS
        for action in actions
    ]
    if full_disks:
        faults += [Fault(f"full disk: {name}", restart, full_disk=name) for name, restart in FULL_DISKS.items()]
    return faults


@contextlib.contextmanager
def work_folder(base: Path, name: str) -> Iterator[Path]:
    work = base / name
    work.mkdir()
    try:
        yield work
    finally:
        shutil.rmtree(work)


def reference_inputs(base: Path, cache: Path) -> Inputs:
    """Runs the uninterrupted reference and sizes the small disks from what it wrote: the extraction's disk
    fits all but the padded members, the others run out halfway through."""
    reference, source = base / "reference", sample_archive(base)
    config_file = write_config(base / "reference.yaml", source, base / "pub")
    started = time.monotonic()
    assert harness.hubpipe_run(config_file, reference, harness.crash_env(None, cache)) == 0
    LOG.info("uninterrupted run: %.1f s", time.monotonic() - started)
    sizes = {
        "extraction": disk_usage(cache / "sources" / "extracted") + 1024**2,
        "run folder": disk_usage(reference / "ingest") // 2,  # the disk fills while ingest writes its records
        "publish root": disk_usage(base / "pub") // 2,
    }
    padded = padded_archive(source, base / "sample-padded.zip")
    return Inputs(reference, source, padded, cache, harness.ingest_counts(reference), sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--random", type=int, default=16, help="kills at random moments (besides every crash point)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--io-errors", default=",".join(IO_ERRORS), help="injected at every crash point; '' for none")
    parser.add_argument("--no-full-disks", action="store_true", help="skip the small-tmpfs faults")
    args = parser.parse_args()
    full_disks = not args.no_full_disks and enter_mount_namespace()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.no_full_disks and not full_disks:
        LOG.warning("no private mount namespace here (needs root and unshare): full-disk faults skipped")
    actions = [action for action in args.io_errors.split(",") if action]
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="hubpipe-faults-") as tmp:
        base = Path(tmp)
        inputs = reference_inputs(base, base / "cache")
        run_kills(args.random, args.seed, inputs, base, tally)
        for index, fault in enumerate(io_faults(actions, full_disks)):
            with work_folder(base, f"io-{index:02d}") as work:
                check_io_fault(fault, work, inputs, tally)
    for note in tally.notes:
        LOG.warning("%s", note)
    print(tally.result())


if __name__ == "__main__":
    main()
