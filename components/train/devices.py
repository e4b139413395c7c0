"""Where and how training runs: device, numeric precision and distribution strategy.

The decision (:func:`plan_devices`) is a pure function of the ``train.precision`` setting and the visible GPUs,
so it is tested without a GPU; :func:`training_runtime` applies it. The same code runs on CPU and GPU:

* ``precision: auto`` trains in ``mixed_float16`` when a GPU is present and in ``float32`` otherwise; the
  models keep their last layer in float32 so probabilities and losses stay float32;
* several GPUs train with ``MirroredStrategy`` (batches are split across them), one GPU or the CPU with the
  default strategy;
* on CPU, TensorFlow's op determinism is switched on so that a fixed seed gives the same metrics on rerun.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

LOG = logging.getLogger(__name__)

FLOAT32 = "float32"
MIXED_FLOAT16 = "mixed_float16"


@dataclass(frozen=True)
class DevicePlan:
    """How training will run."""

    device: str  # "GPU" or "CPU"
    num_gpus: int
    precision: str  # "float32" or "mixed_float16"
    distribution: str  # "mirrored" (several GPUs) or "default"

    def describe(self) -> str:
        where = f"{self.num_gpus} GPU(s)" if self.num_gpus else "CPU"
        return f"{where}, {self.precision}, {self.distribution} strategy"


def plan_devices(precision: str, gpus: Sequence[str]) -> DevicePlan:
    """The plan for a ``train.precision`` setting (auto, float32, mixed_float16) and the visible GPU names."""
    num_gpus = len(gpus)
    if precision == "auto":
        chosen = MIXED_FLOAT16 if num_gpus else FLOAT32
    elif precision in (FLOAT32, MIXED_FLOAT16):
        chosen = precision
    else:
        raise ValueError(f"unknown precision {precision!r}")
    if chosen == MIXED_FLOAT16 and not num_gpus:
        LOG.warning("mixed_float16 without a GPU is slow; set train.precision to auto or float32 on CPU")
    return DevicePlan(
        device="GPU" if num_gpus else "CPU",
        num_gpus=num_gpus,
        precision=chosen,
        distribution="mirrored" if num_gpus > 1 else "default",
    )


def visible_gpus(tf: Any) -> list[str]:
    return [device.name for device in tf.config.list_physical_devices("GPU")]


@contextlib.contextmanager
def training_runtime(tf: Any, plan: DevicePlan) -> Iterator[Any]:
    """Applies ``plan`` (precision policy, determinism) and yields the distribution strategy to build models in.

    The global Keras precision policy is restored on exit.
    """
    previous_policy = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(plan.precision)
    if plan.device == "CPU":
        tf.config.experimental.enable_op_determinism()
    strategy = tf.distribute.MirroredStrategy() if plan.distribution == "mirrored" else tf.distribute.get_strategy()
    LOG.info("training on %s", plan.describe())
    try:
        yield strategy
    finally:
        tf.keras.mixed_precision.set_global_policy(previous_policy)
