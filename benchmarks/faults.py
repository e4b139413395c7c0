"""Crash recovery of the whole pipeline on the sample dataset: SIGKILL at every crash point and at random moments.

One uninterrupted ``hubpipe run`` (the sample dataset as a .zip, so that extraction is part of the pipeline;
offline EfficientNet-Lite0; 2 epochs; thresholds every model passes, so that every run publishes) gives the
reference run folder and the stages' durations. Then, for every crash point and for random moments, a copy of
that folder with the stages from a chosen one onwards removed is run again into a new publish root and killed
(by the crash point, or by the benchmark at a random time within the remaining stages' duration), and rerun
without a kill. Each rerun must exit 0, hold the same kinds of files as the reference, keep every example,
leave LATEST on the complete version it blessed, and leave nothing temporary behind (run folder, publish root,
caches).

    python benchmarks/faults.py [--random 16] [--seed 0]
    # ends with: RESULT kills=N recovered=N wrong_latest=0 leftovers=0 lost_examples=0
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "faults"))

import harness  # the fault-injection tests' checks

from hubpipe.pipeline.config import load_config, to_yaml
from hubpipe.pipeline.crashpoints import CRASH_POINTS

LOG = logging.getLogger("faults")

SETTINGS = {
    "train.epochs": 2,
    "train.baseline_epochs": 1,
    "evaluate.min_accuracy": 0.0,
    "evaluate.min_margin_over_baseline": -1.0,
    "evaluate.max_drop_vs_blessed": 1.0,
}
START_UP_S = 8.0  # imports before the first stage starts, roughly; random kills also land there


@dataclass
class Tally:
    kills: int = 0
    recovered: int = 0
    wrong_latest: int = 0
    leftovers: int = 0
    lost_examples: int = 0


@dataclass(frozen=True)
class Kill:
    label: str
    restart: str | None  # the first stage removed from the reference copy (None: evaluate and publish rerun)
    point: str | None = None  # a crash point, or None for a kill after ``after_s`` seconds
    after_s: float | None = None


def prepare(reference: Path, run_dir: Path, restart: str | None, cache: Path) -> None:
    """A copy of the reference run with ``restart`` and the stages after it removed; the embeddings too when
    training restarts (the feature pass runs again), the extracted archive when ingest does."""
    harness.copy_run(reference, run_dir, restart)
    first = harness.STAGES.index(restart) if restart else len(harness.STAGES)
    if first <= harness.STAGES.index("train"):
        shutil.rmtree(run_dir / "cache", ignore_errors=True)
    if first == 0:
        shutil.rmtree(cache / "sources" / "extracted", ignore_errors=True)


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


@dataclass(frozen=True)
class Inputs:
    reference: Path  # the uninterrupted run folder
    source: Path  # the sample dataset's archive
    cache: Path  # HUBPIPE_CACHE_DIR of every run


def check(kill: Kill, work: Path, inputs: Inputs, tally: Tally) -> None:
    """Kills a run as ``kill`` says, reruns it, and counts what the rerun got right."""
    reference, source, cache = inputs.reference, inputs.source, inputs.cache
    run_dir, root = work / "run", work / "published"
    prepare(reference, run_dir, kill.restart, cache)
    config_file = write_config(work / "config.yaml", source, root)
    status = run_or_fail(config_file, run_dir, harness.crash_env(kill.point, cache), kill.after_s)
    if status == 0:
        LOG.info("%-36s finished before the kill; not counted", kill.label)
        return
    tally.kills += 1
    if status != -9:
        LOG.info("%-36s failed before the kill: not recovered", kill.label)
        return
    status = run_or_fail(config_file, run_dir, harness.crash_env(None, cache))
    same_kinds = status == 0 and harness.artifact_kinds(run_dir) == harness.artifact_kinds(reference)
    latest = harness.latest_problem(run_dir, root) if status == 0 else "the rerun failed"
    left = harness.leftovers(run_dir, root, cache)
    lost = status != 0 or harness.examples_written(run_dir) != harness.examples_written(reference)
    tally.recovered += same_kinds and latest is None and not left and not lost
    tally.wrong_latest += latest is not None
    tally.leftovers += bool(left)
    tally.lost_examples += lost
    LOG.info("%-36s rerun %d, kinds %s, latest %s, leftovers %s", kill.label, status, same_kinds, latest or "ok", left)


def sample_archive(folder: Path) -> Path:
    """The embedded sample dataset as a .zip."""
    from hubpipe.data.sample import generate

    return harness.zip_images(generate(folder / "sample"), folder / "sample.zip")


def random_kill(index: int, durations: dict[str, float], rng: random.Random) -> Kill:
    """A kill at a random moment of a run that restarts at a random stage."""
    restart = rng.choice(harness.STAGES)
    remaining = START_UP_S + sum(durations[s] for s in harness.STAGES[harness.STAGES.index(restart) :])
    remaining += durations["evaluate"] + durations["publish"] if restart == "publish" else 0.0
    after = round(rng.uniform(0.5, 0.7 * remaining), 2)  # the reference ran under the same load plus start-up
    return Kill(f"random {index}: {restart} + {after:.1f} s", restart, after_s=after)


def run_kills(count: int, seed: int, inputs: Inputs, base: Path) -> Tally:
    """Every crash point, then random kills until ``count`` of them hit a running process (at most 3x tries)."""
    stages = json.loads((inputs.reference / "run.json").read_text())["stages"]
    durations = {record["name"]: record["duration_s"] for record in stages}
    rng, tally = random.Random(seed), Tally()
    kills = [Kill(point, harness.RESTART_FROM.get(point), point=point) for point in CRASH_POINTS]
    for index in range(len(CRASH_POINTS) + 3 * count):
        if index >= len(kills) and tally.kills >= len(CRASH_POINTS) + count:
            break
        kill = kills[index] if index < len(kills) else random_kill(index - len(kills) + 1, durations, rng)
        work = base / f"kill-{index:02d}"
        work.mkdir()
        check(kill, work, inputs, tally)
        shutil.rmtree(work)
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--random", type=int, default=16, help="kills at random moments (besides every crash point)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="hubpipe-faults-") as tmp:
        base, cache = Path(tmp), Path(tmp) / "cache"
        reference, source = base / "reference", sample_archive(base)
        config_file = write_config(base / "reference.yaml", source, base / "pub")
        started = time.monotonic()
        assert harness.hubpipe_run(config_file, reference, harness.crash_env(None, cache)) == 0
        LOG.info("uninterrupted run: %.1f s", time.monotonic() - started)
        tally = run_kills(args.random, args.seed, Inputs(reference, source, cache), base)
    print(
        f"RESULT kills={tally.kills} recovered={tally.recovered} wrong_latest={tally.wrong_latest} "
        f"leftovers={tally.leftovers} lost_examples={tally.lost_examples}"
    )


if __name__ == "__main__":
    main()
