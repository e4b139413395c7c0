"""How many cores this process may really use, and TensorFlow's thread pools sized to match.

``os.cpu_count()`` is the host's core count: in a Kubernetes pod with a CPU limit of 2 on a 64-core node it
says 64, and TensorFlow's default pools (one thread per host core for intra-op, inter-op and tf.data work)
then run 64 threads on 2 cores' worth of time, which throttles the pod. The usable count is the smaller of

* the CPU affinity mask (``os.sched_getaffinity``: ``taskset``, cpusets), and
* the cgroup CPU quota rounded up: ``cpu.max`` (cgroup v2, ``"200000 100000"`` is 2 CPUs, ``"max ..."`` none)
  or ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (cgroup v1, a quota of -1 is none).

Reading is split from deciding (:func:`cores_from`) so the decision is tested on plain strings.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")


def quota_cpus(cpu_max: str | None = None, cfs_quota: str | None = None, cfs_period: str | None = None) -> float | None:
    """The CPU quota of a cgroup v2 ``cpu.max`` line or of cgroup v1 quota/period values; None without a limit."""
    if cpu_max:
        parts = cpu_max.split()
        if parts and parts[0] != "max":
            period = float(parts[1]) if len(parts) > 1 else 100_000.0
            return float(parts[0]) / period
        return None
    if cfs_quota and cfs_period:
        quota, period = float(cfs_quota), float(cfs_period)
        return quota / period if quota > 0 and period > 0 else None
    return None


def cores_from(affinity: int, quota: float | None) -> int:
    """The cores to size thread pools for: the affinity count, capped by the quota rounded up; at least 1."""
    cores = max(1, affinity)
    if quota is not None and quota > 0:
        cores = min(cores, max(1, math.ceil(quota)))
    return cores


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _own_cgroup_dir(root: Path) -> Path:
    """This process's cgroup v2 folder (``/proc/self/cgroup`` line ``0::/path``), else the root."""
    for line in (_read(Path("/proc/self/cgroup")) or "").splitlines():
        if line.startswith("0::"):
            candidate = root / line[3:].lstrip("/")
            if (candidate / "cpu.max").is_file():
                return candidate
    return root


def usable_cores(root: Path = CGROUP_ROOT) -> int:
    """The cores this process may use: CPU affinity capped by the cgroup CPU quota (v2, else v1)."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        affinity = os.cpu_count() or 1
    quota = quota_cpus(cpu_max=_read(_own_cgroup_dir(root) / "cpu.max"))
    if quota is None:
        quota = quota_cpus(
            cfs_quota=_read(root / "cpu" / "cpu.cfs_quota_us"), cfs_period=_read(root / "cpu" / "cpu.cfs_period_us")
        )
    return cores_from(affinity, quota)


def configure_tensorflow_threads(tf: Any, cores: int) -> bool:
    """Sizes TensorFlow's intra-op and inter-op pools to ``cores``; False when its runtime was already started.

    TensorFlow fixes its pools when its runtime first starts (an earlier stage of the same process may have
    done so); the pools then keep their size, which is logged once.
    """
    threading = tf.config.threading
    if threading.get_intra_op_parallelism_threads() == cores and threading.get_inter_op_parallelism_threads() == cores:
        return True
    try:
        threading.set_intra_op_parallelism_threads(cores)
        threading.set_inter_op_parallelism_threads(cores)
    except RuntimeError:
        LOG.info("TensorFlow's thread pools were already started in this process; %d usable core(s)", cores)
        return False
    LOG.info("TensorFlow thread pools sized for %d usable core(s)", cores)
    return True
