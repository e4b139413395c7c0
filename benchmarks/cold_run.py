"""The default cold ``hubpipe run`` next to the same run with the previous CPU path, side by side.

Both run the whole pipeline (``hubpipe run``, a fresh output folder each time, so no stage is cached) on the
embedded sample dataset with the default configuration, in separate processes, alternating ``--repeats``
times (which side runs first alternates too) so that load from other processes on a shared machine hits
both alike:

* **default**: ``train.engine=auto`` and ``train.decode_cache=true``; the TFLite conversion cache is emptied
  before each of these runs, so a conversion is timed whenever ``auto`` chooses one (on the sample dataset's
  1000 images it does not: too few to repay it, see :mod:`hubpipe.components.train.engine`);
* **previous**: ``--set train.engine=tensorflow --set train.decode_cache=false``, and TensorFlow's own choice
  of CPU kernels: ``TF_ENABLE_ONEDNN_OPTS`` set to what TensorFlow picks on this CPU when the variable is unset
  (oneDNN only on CPUs with AVX-512 VNNI, BF16 or AMX), where hubpipe now turns oneDNN on everywhere (see
  :func:`hubpipe.pipeline.core.runtime.import_tensorflow`). On a CPU where TensorFlow already picks oneDNN, both
  sides run the same kernels;
* **flags** (only where TensorFlow's own choice is not oneDNN): the previous side's ``--set`` flags on the
  default's kernels. It splits the difference in two: ``flags`` against ``default`` is what the extraction
  engine and decoding once change (their time and their accuracies), ``previous`` against ``flags`` what the
  kernels change.

Machine-wide caches stay warm for both (the sample dataset, the built offline backbone), as after a first
run. Each run publishes into its own temporary root, so no run is gated by another's blessed model. The
times are wall-clock of the whole command (process start and imports included); each side's fastest round
counts. The last line is machine-readable::

    RESULT default_s=... previous_s=... ratio=... max_acc_diff=... previous_onednn=...
           [flags_s=... flags_ratio=... flags_acc_diff=... kernels_acc_diff=...] load=...

where ``max_acc_diff`` is the largest difference, in accuracy points, between two sides' test accuracies of
the same model in run.json (``default`` and ``previous``; ``flags_acc_diff``: ``default`` and ``flags``;
``kernels_acc_diff``: ``flags`` and ``previous``), ``flags_ratio`` is ``default_s / flags_s``, and ``load``
the 1-minute load average before and after the benchmark (other work on a shared machine moves every
figure). Each round also prints where the time went: every stage's
duration from run.json and, inside train, each model's training and extraction seconds (conversion included).
Run: ``.venv/bin/python benchmarks/cold_run.py [--repeats 2]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from tracking import run_stages, timed_run
from train_vs_fit import tensorflow_picks_onednn

from hubpipe.components.train.engine import conversion_dir
from hubpipe.pipeline.core.cache_root import cache_root
from hubpipe.pipeline.core.runtime import ONEDNN_ENV

PREVIOUS = ("--set", "train.engine=tensorflow", "--set", "train.decode_cache=false")


def hubpipe_run(
    work: Path, name: str, extra: tuple[str, ...], env: dict[str, str] | None = None
) -> tuple[float, dict[str, float], dict]:
    """One cold run; returns (seconds, test accuracy per model, the train stage's results with stage durations)."""
    output = work / name
    seconds = timed_run(output, "--set", f"publish.root={work / (name + '-published')}", *extra, env=env)
    stages = run_stages(output)
    train = {
        **stages["train"]["results"],
        "stage_seconds": {stage: round(float(record.get("duration_s", 0.0)), 1) for stage, record in stages.items()},
    }
    accuracies = {model: values["test_accuracy"] for model, values in train["models"].items()}
    return seconds, accuracies, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    previous_onednn = tensorflow_picks_onednn()
    sides: dict[str, tuple[tuple[str, ...], dict[str, str] | None]] = {
        "default": ((), None),
        "previous": (PREVIOUS, {**os.environ, ONEDNN_ENV: "1" if previous_onednn else "0"}),
    }
    if not previous_onednn:  # the previous flags on the default's kernels
        sides["flags"] = (PREVIOUS, None)
    runs: dict[str, list[tuple[float, dict[str, float], dict]]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory(prefix="hubpipe-cold-run-") as tmp:
        work = Path(tmp)
        for round_ in range(args.repeats):
            names = list(sides)
            order = names[round_ % len(names) :] + names[: round_ % len(names)]  # each side goes first in turn
            for side in order:
                if side == "default":
                    shutil.rmtree(conversion_dir(cache_root()), ignore_errors=True)
                extra, env = sides[side]
                runs[side].append(hubpipe_run(work, f"{side}{round_}", extra, env))
                seconds, accuracies, train = runs[side][-1]
                print(
                    f"round {round_ + 1} {side}: {seconds:.1f} s (load {os.getloadavg()[0]:.1f}), "
                    f"accuracies {accuracies}, {_summary(train)}",
                    flush=True,
                )
    best = {side: min(side_runs, key=lambda run: run[0]) for side, side_runs in runs.items()}
    default, previous = best["default"], best["previous"]
    figures = [
        f"default_s={default[0]:.1f}",
        f"previous_s={previous[0]:.1f}",
        f"ratio={default[0] / previous[0]:.2f}",
        f"max_acc_diff={_acc_diff(default, previous):.2f}",
        f"previous_onednn={int(previous_onednn)}",
    ]
    if "flags" in best:
        flags = best["flags"]
        figures += [
            f"flags_s={flags[0]:.1f}",
            f"flags_ratio={default[0] / flags[0]:.2f}",
            f"flags_acc_diff={_acc_diff(default, flags):.2f}",
            f"kernels_acc_diff={_acc_diff(flags, previous):.2f}",
        ]
    print("RESULT " + " ".join(figures) + f" load={load_before:.1f}/{os.getloadavg()[0]:.1f}")


def _acc_diff(one: tuple[float, dict[str, float], dict], other: tuple[float, dict[str, float], dict]) -> float:
    """The largest difference, in accuracy points, between two runs' test accuracies of the same model."""
    return max(abs(one[1][model] - other[1][model]) for model in other[1]) * 100


def _summary(train: dict) -> str:
    seconds = {model: values["train_seconds"] for model, values in train["models"].items()}
    extraction, engines = train["feature_extraction_seconds"], train["extraction_engine"]
    return (
        f"stages {train['stage_seconds']}, train_seconds {seconds}, extraction {extraction}, engine {engines}, "
        f"oneDNN {train.get('tensorflow_onednn')}"
    )


if __name__ == "__main__":
    main()
