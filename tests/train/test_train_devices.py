"""Device, precision and strategy decisions, with the device list injected (no GPU needed)."""

from __future__ import annotations

import pytest

from hubpipe.components.common.head import build_head
from hubpipe.components.train.devices import DevicePlan, plan_devices, training_runtime
from hubpipe.components.train.models import build_scratch_cnn
from hubpipe.pipeline.core.runtime import import_tensorflow

ONE_GPU = ["/physical_device:GPU:0"]
TWO_GPUS = ["/physical_device:GPU:0", "/physical_device:GPU:1"]


@pytest.mark.parametrize(
    ("precision", "gpus", "expected"),
    [
        ("auto", [], DevicePlan("CPU", 0, "float32", "default")),
        ("auto", ONE_GPU, DevicePlan("GPU", 1, "mixed_float16", "default")),
        ("auto", TWO_GPUS, DevicePlan("GPU", 2, "mixed_float16", "mirrored")),
        ("float32", TWO_GPUS, DevicePlan("GPU", 2, "float32", "mirrored")),
        ("mixed_float16", ONE_GPU, DevicePlan("GPU", 1, "mixed_float16", "default")),
    ],
)
def test_plan_follows_precision_setting_and_gpu_count(precision: str, gpus: list[str], expected: DevicePlan) -> None:
    assert plan_devices(precision, gpus) == expected


def test_explicit_mixed_precision_on_cpu_is_honoured_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    assert plan_devices("mixed_float16", []).precision == "mixed_float16"
    assert "slow" in caplog.text


def test_unknown_precision_is_rejected() -> None:
    with pytest.raises(ValueError, match="bfloat"):
        plan_devices("bfloat16", [])


def test_mixed_precision_keeps_outputs_float32_and_restores_the_policy() -> None:
    tf = import_tensorflow()
    plan = plan_devices("auto", ONE_GPU)  # what a GPU machine gets; the models are only built here
    with training_runtime(tf, plan) as strategy:
        assert tf.keras.mixed_precision.global_policy().name == "mixed_float16"
        assert strategy is tf.distribute.get_strategy()
        cnn = build_scratch_cnn(tf, 32, 4)
        head = build_head(tf, 16, 4)
    assert tf.keras.mixed_precision.global_policy().name == "float32"
    assert cnn.get_layer("conv1_1").compute_dtype == "float16"
    assert cnn.output.dtype == tf.float32 and head.output.dtype == tf.float32
    assert cnn.get_layer("probabilities").compute_dtype == "float32"


def test_autograph_skips_tf_keras_once() -> None:
    from tensorflow.python.autograph.core import config as autograph_config

    from hubpipe.pipeline.core.runtime import import_tensorflow

    import_tensorflow()
    import_tensorflow()
    matching = [rule for rule in autograph_config.CONVERSION_RULES if rule.matches("tf_keras")]
    assert len(matching) == 1
