"""How far the models' test accuracies move with the seed, the CPU kernels and the usable cores.

The evidence for comparing a change's accuracies with a previous path's: a difference counts only against
what the previous path itself gives when nothing but the arithmetic's order changes. On the embedded sample
dataset (10 classes, 750 training and 250 test images), the default configuration's train stage runs once
per setting, each in its own process and its own copy of one ingested and validated run folder:

* every ``--seeds`` seed (``train.seed``) with TensorFlow's own CPU kernels (``TF_ENABLE_ONEDNN_OPTS=0``)
  and with oneDNN (``TF_ENABLE_ONEDNN_OPTS=1``);
* the first seed again on one core (CPU affinity of the child process; TensorFlow's thread pools and the
  extraction engine follow the usable cores, as in a pod with a CPU limit of 1), with each kernel setting.

Each line printed is one setting's test accuracies from run.json. A model's accuracies are deterministic for
a given seed, kernel setting and core count (rerunning one gives the same figures), so one run per setting
is enough and other load on the machine changes nothing here. The last line is machine-readable, with
figures in accuracy points::

    RESULT scratch_seed_spread=... scratch_kernels_max=... scratch_cores_max=... transfer_seed_spread=...
        transfer_kernels_max=... transfer_cores_max=... runs=...

``*_seed_spread`` is the largest max-minus-min over the seeds at one kernel setting, ``*_kernels_max`` the
largest difference between the two kernel settings at one seed, ``*_cores_max`` the largest difference
between one core and all usable cores at the first seed and one kernel setting; ``scratch`` is the
from-scratch baseline CNN, ``transfer`` the largest figure over the transfer models. Run:
``.venv/bin/python benchmarks/baseline_noise.py [--seeds 42,1,2,3] [--no-one-core]`` (about 25 minutes
on 2 idle AVX2 cores for the ten train stages; ``--seeds 42`` alone, four stages, took 9 minutes).
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import tempfile
from pathlib import Path

from tracking import run_stages, timed_run

from hubpipe.components.train.naming import SCRATCH_MODEL
from hubpipe.pipeline.core.runtime import ONEDNN_ENV

KERNELS = {"own": "0", "onednn": "1"}


def prepare(work: Path) -> Path:
    """One run folder with the sample dataset ingested and validated (copied for every setting)."""
    base = work / "base"
    timed_run(base, "--until", "validate")
    return base


def train_once(base: Path, work: Path, seed: int, kernels: str, one_core: bool) -> dict[str, float]:
    """The train stage on a copy of ``base``; returns each model's test accuracy."""
    output = work / f"seed{seed}-{kernels}-{'1core' if one_core else 'all'}"
    shutil.copytree(base, output)
    env = {**os.environ, ONEDNN_ENV: KERNELS[kernels]}
    first_core = min(os.sched_getaffinity(0))
    timed_run(
        output,
        "--until",
        "train",
        "--set",
        f"train.seed={seed}",
        env=env,
        preexec_fn=(lambda: os.sched_setaffinity(0, {first_core})) if one_core else None,
    )
    models = run_stages(output)["train"]["results"]["models"]
    shutil.rmtree(output)
    return {model: float(values["test_accuracy"]) for model, values in models.items()}


def spread(values: list[float]) -> float:
    return (max(values) - min(values)) * 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="42,1,2,3", help="comma-separated train.seed values")
    parser.add_argument("--no-one-core", action="store_true", help="skip the one-core runs")
    args = parser.parse_args()
    try:
        seeds = [int(seed) for seed in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds: comma-separated integers, not {args.seeds!r}")
    results: dict[tuple[int, str, bool], dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="hubpipe-baseline-noise-") as tmp:
        work = Path(tmp)
        base = prepare(work)
        settings = [(seed, kernels, False) for seed, kernels in itertools.product(seeds, KERNELS)]
        if not args.no_one_core:
            settings += [(seeds[0], kernels, True) for kernels in KERNELS]
        for seed, kernels, one_core in settings:
            results[seed, kernels, one_core] = train_once(base, work, seed, kernels, one_core)
            cores = "1 core" if one_core else "all cores"
            print(f"seed {seed}, {kernels} kernels, {cores}: {results[seed, kernels, one_core]}", flush=True)
    models = sorted(next(iter(results.values())))
    figures = {}
    for family, names in (("scratch", [SCRATCH_MODEL]), ("transfer", [m for m in models if m != SCRATCH_MODEL])):
        figures[f"{family}_seed_spread"] = max(
            (spread([results[seed, kernels, False][name] for seed in seeds]) for kernels in KERNELS for name in names),
            default=0.0,
        )
        figures[f"{family}_kernels_max"] = max(
            (spread([results[seed, kernels, False][name] for kernels in KERNELS]) for seed in seeds for name in names),
            default=0.0,
        )
        figures[f"{family}_cores_max"] = max(
            (
                spread([results[seeds[0], kernels, one_core][name] for one_core in (False, True)])
                for kernels in KERNELS
                for name in names
                if (seeds[0], kernels, True) in results
            ),
            default=0.0,
        )
    print("RESULT " + " ".join(f"{name}={value:.2f}" for name, value in figures.items()) + f" runs={len(results)}")


if __name__ == "__main__":
    main()
