"""The offline EfficientNet-Lite0 SavedModel as a TF Hub layer: reuse, fine-tuning, mixed precision, any input size.

Parity with PyTorch and real photos, for all three offline backbones: test_backbone_lite_family.py.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from hubpipe.components.backbones import load_feature_extractor, resolve_backbone
from hubpipe.pipeline.core.runtime import import_tensorflow

TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def tf() -> ModuleType:
    return import_tensorflow()


@pytest.fixture(scope="module")
def loaded(tf: ModuleType, lite0_saved_model: Path) -> Any:
    """The SavedModel as TF Hub users see it (``hub.load`` is ``tf.saved_model.load``)."""
    return tf.saved_model.load(str(lite0_saved_model))


def _inputs(reference: dict[str, np.ndarray]) -> np.ndarray:
    return reference["images"].astype(np.float32) / 255.0


def test_hub_keras_layer_fine_tunes_with_batchnorm_in_inference_mode(
    tf: ModuleType, lite0_saved_model: Path, lite0_reference: dict
) -> None:
    layer = load_feature_extractor(resolve_backbone(str(lite0_saved_model)), trainable=True)
    frozen = load_feature_extractor(resolve_backbone(str(lite0_saved_model)), trainable=False)
    assert len(layer.trainable_weights) > 100 and layer.non_trainable_weights  # BN moving statistics
    assert not frozen.trainable_weights
    images = tf.constant(_inputs(lite0_reference))
    inference = layer(images, training=False).numpy()
    np.testing.assert_allclose(inference, lite0_reference["features"], atol=TOLERANCE)
    assert np.abs(layer(images, training=True).numpy() - inference).max() > 1e-2  # batch statistics: passed through
    np.testing.assert_allclose(frozen(images, training=True).numpy(), inference, atol=1e-5)  # frozen: inference
    head = tf.keras.layers.Dense(2)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(head(layer(images, training=False))))
    gradients = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None for g in gradients[-4:])  # the top layers can be fine-tuned


def test_the_layer_works_under_mixed_precision(tf: ModuleType, lite0_saved_model: Path) -> None:
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = load_feature_extractor(resolve_backbone(str(lite0_saved_model)))
        model = tf.keras.Sequential([tf.keras.Input((224, 224, 3)), layer, tf.keras.layers.Dense(3)])
        assert model(tf.zeros([1, 224, 224, 3])).shape == (1, 3)
        assert layer.compute_dtype == "float32"
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")


def test_other_input_sizes_are_accepted(tf: ModuleType, loaded: Any) -> None:
    features = loaded(tf.zeros([2, 256, 192, 3]), training=False)
    assert features.shape == (2, 1280)
