"""Usable cores: CPU affinity capped by the cgroup quota; TensorFlow's pools sized to them; oneDNN kernels on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hubpipe.components.train import threads
from hubpipe.pipeline.core.runtime import ONEDNN_ENV


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("200000 100000", 2.0), ("150000 100000", 1.5), ("max 100000", None), ("50000", 0.5), ("", None)],
)
def test_cgroup_v2_quota(cpu_max: str, expected: float | None) -> None:
    assert threads.quota_cpus(cpu_max=cpu_max) == expected


def test_cgroup_v1_quota() -> None:
    assert threads.quota_cpus(cfs_quota="300000", cfs_period="100000") == 3.0
    assert threads.quota_cpus(cfs_quota="-1", cfs_period="100000") is None


@pytest.mark.parametrize(
    ("affinity", "quota", "expected"), [(64, 2.0, 2), (64, 1.5, 2), (4, None, 4), (2, 8.0, 2), (8, 0.2, 1)]
)
def test_cores_are_the_affinity_capped_by_the_quota_rounded_up(
    affinity: int, quota: float | None, expected: int
) -> None:
    assert threads.cores_from(affinity, quota) == expected


def test_a_pod_limited_to_2_cpus_on_a_64_core_node_uses_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cpu.max").write_text("200000 100000\n")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    assert threads.usable_cores(tmp_path) == 2


def test_cgroup_v1_files_are_read_when_v2_is_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert threads.usable_cores(tmp_path) == 1


def test_without_a_quota_the_affinity_mask_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5})
    assert threads.usable_cores(tmp_path) == 3


class _Threading:
    """tf.config.threading's interface; ``started`` makes setting fail as in a running TensorFlow."""

    def __init__(self, started: bool):
        self.started, self.intra, self.inter = started, 0, 0

    def get_intra_op_parallelism_threads(self) -> int:
        return self.intra

    def get_inter_op_parallelism_threads(self) -> int:
        return self.inter

    def set_intra_op_parallelism_threads(self, n: int) -> None:
        if self.started:
            raise RuntimeError("Intra op parallelism cannot be modified after initialization.")
        self.intra = n

    def set_inter_op_parallelism_threads(self, n: int) -> None:
        if self.started:
            raise RuntimeError("Inter op parallelism cannot be modified after initialization.")
        self.inter = n


class _TF:
    def __init__(self, started: bool):
        self.config = type("config", (), {"threading": _Threading(started)})()


def test_tensorflow_pools_are_sized_to_the_usable_cores() -> None:
    tf = _TF(started=False)
    assert threads.configure_tensorflow_threads(tf, 2)
    assert (tf.config.threading.intra, tf.config.threading.inter) == (2, 2)


def test_a_started_tensorflow_keeps_its_pools_without_failing() -> None:
    assert not threads.configure_tensorflow_threads(_TF(started=True), 2)


_ONEDNN_PROBE = (
    "from hubpipe.pipeline.core.runtime import import_tensorflow, onednn_enabled\n"
    "import_tensorflow()\n"
    "print(onednn_enabled())"
)


@pytest.mark.parametrize(("setting", "expected"), [(None, "True"), ("0", "False"), ("1", "True")])
def test_onednn_kernels_are_on_unless_the_environment_turns_them_off(setting: str | None, expected: str) -> None:
    """TensorFlow picks oneDNN by itself only on some CPUs; hubpipe turns it on unless told otherwise."""
    env = {name: value for name, value in os.environ.items() if name != ONEDNN_ENV}
    if setting is not None:
        env[ONEDNN_ENV] = setting
    result = subprocess.run([sys.executable, "-c", _ONEDNN_PROBE], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.split()[-1] == expected
