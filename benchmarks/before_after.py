"""The default ``hubpipe run`` on the embedded sample with this tree's code and with another git revision's
(default ``main``), side by side in one benchmark: cold, rerun unchanged, and a new run folder.

The other revision's code is exported with ``git archive`` into a temporary folder and imported in place of
this tree through ``PYTHONPATH`` (a ``hubpipe`` package of links to its folders), with this environment's
dependencies. Each round runs, for each side (the order alternates between rounds):

* **cold**: a new run folder, an empty vector store (this tree; the other revision's embedding cache lives
  in the run folder, so it starts empty too) and an empty TFLite conversion cache;
* **warm**: the same command again into the same run folder (every stage cached);
* **new folder**: the same command into another new run folder, with the machine's caches as the cold run
  left them (this tree reuses the vectors of the store; the other revision embeds again).

Machine-wide caches (the sample dataset, the built offline backbone) are warm for both, as after a first run.
Times are wall-clock of the whole command; each side's fastest round counts. The last line::

    RESULT before_cold_s=... after_cold_s=... cold_ratio=... before_warm_s=... after_warm_s=... warm_ratio=...
           before_new_s=... after_new_s=... new_ratio=... acc_before=... acc_after=... max_acc_diff=...

where ``*_ratio`` is after over before and ``acc_*`` the test accuracies (transfer model / from-scratch CNN)
of the cold runs. Run: ``.venv/bin/python benchmarks/before_after.py [--before main] [--repeats 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HUBPIPE = [sys.executable, "-m", "hubpipe.pipeline.cli"]
TREE = Path(__file__).resolve().parents[1]


def export_revision(revision: str, folder: Path) -> Path:
    """The revision's files under ``folder/tree`` and a ``hubpipe`` package of links to them; returns the
    folder to put on ``PYTHONPATH``."""
    tree, shim = folder / "tree", folder / "shim" / "hubpipe"
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(TREE), "archive", revision], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    shim.mkdir(parents=True)
    for entry in (tree / "pipeline" / "toplevel").iterdir():
        (shim / entry.name).symlink_to(entry)
    for name in ("pipeline", "components", "data"):
        (shim / name).symlink_to(tree / name)
    return shim.parent


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def accuracies(output: Path) -> dict[str, float]:
    stages = {stage["name"]: stage for stage in json.loads((output / "run.json").read_text())["stages"]}
    return {model: values["test_accuracy"] for model, values in stages["train"]["results"]["models"].items()}


def one_side(work: Path, side: str, round_: int, env: dict[str, str], extra: list[str]) -> dict:
    from hubpipe.components.train.engine import conversion_dir

    shutil.rmtree(conversion_dir(), ignore_errors=True)
    store = work / f"store-{side}-{round_}"
    settings = ["--set", f"publish.root={work / f'published-{side}-{round_}'}", *extra]
    if side == "after":
        settings += ["--set", f"train.vector_store={store}"]
    cold_dir, new_dir = work / f"{side}-{round_}-cold", work / f"{side}-{round_}-new"
    run = [*HUBPIPE, "run", *settings, "--output"]
    result = {
        "cold": timed([*run, str(cold_dir)], env),
        "warm": timed([*run, str(cold_dir)], env),
        "new": timed([*run, str(new_dir)], env),
        "accuracies": accuracies(cold_dir),
    }
    print(f"round {round_ + 1} {side}: {result} (load {os.getloadavg()[0]:.1f})", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="main", help="the git revision to compare with")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"CPU: {cpu_name()} ({platform.machine()}), {os.cpu_count()} cores", flush=True)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="hubpipe-before-after-") as tmp:
        work = Path(tmp)
        shim = export_revision(args.before, work / "before-code")
        envs = {
            "before": {
                **os.environ,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(shim), os.environ.get("PYTHONPATH")])),
            },
            "after": dict(os.environ),
        }
        runs: dict[str, list[dict]] = {"before": [], "after": []}
        for round_ in range(args.repeats):
            order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
            for side in order:
                runs[side].append(one_side(work, side, round_, envs[side], []))
    best = {
        side: {kind: min(r[kind] for r in side_runs) for kind in ("cold", "warm", "new")}
        for side, side_runs in runs.items()
    }
    acc = {side: runs[side][0]["accuracies"] for side in runs}
    diff = max(abs(acc["before"][m] - acc["after"][m]) for m in acc["before"]) * 100
    figures = []
    for kind in ("cold", "warm", "new"):
        before, after = best["before"][kind], best["after"][kind]
        figures += [
            f"before_{kind}_s={before:.1f}",
            f"after_{kind}_s={after:.1f}",
            f"{kind}_ratio={after / before:.2f}",
        ]
    shown = {
        side: "/".join(f"{acc[side][m]:.3f}" for m in sorted(acc[side], key=lambda m: m == "scratch_cnn"))
        for side in acc
    }
    figures += [f"acc_before={shown['before']}", f"acc_after={shown['after']}", f"max_acc_diff={diff:.2f}"]
    print("RESULT " + " ".join(figures) + f" load={load_before:.1f}/{os.getloadavg()[0]:.1f}")


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
