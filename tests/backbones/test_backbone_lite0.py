"""The offline EfficientNet-Lite0 SavedModel: parity with PyTorch, real photos, TF Hub reuse and fine-tuning."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import skimage.data
from PIL import Image

from hubpipe.components.backbones import backbone_fingerprint, load_feature_extractor, resolve_backbone
from hubpipe.components.backbones.manifest import read_manifest
from hubpipe.pipeline.runtime import import_tensorflow

CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug
TOLERANCE = 1e-3


def eval_preprocess(image: np.ndarray, size: int = 224) -> np.ndarray:
    """As documented for the backbone: centre 87.5% of the shorter side, bicubic resize, float32 in [0, 1]."""
    height, width = image.shape[:2]
    side = int(min(height, width) * 224 / 256)
    top, left = (height - side) // 2, (width - side) // 2
    crop = Image.fromarray(image[top : top + side, left : left + side]).resize((size, size), Image.BICUBIC)
    return np.asarray(crop, dtype=np.float32) / 255.0


@pytest.fixture(scope="module")
def tf() -> ModuleType:
    return import_tensorflow()


@pytest.fixture(scope="module")
def loaded(tf: ModuleType, lite0_saved_model: Path) -> Any:
    """The SavedModel as TF Hub users see it (``hub.load`` is ``tf.saved_model.load``)."""
    return tf.saved_model.load(str(lite0_saved_model))


def _inputs(reference: dict[str, np.ndarray]) -> np.ndarray:
    return reference["images"].astype(np.float32) / 255.0


def test_imagenet_logits_match_the_pytorch_reference(tf: ModuleType, loaded: Any, lite0_reference: dict) -> None:
    logits = loaded.signatures["imagenet_logits"](images=tf.constant(_inputs(lite0_reference)))["logits"].numpy()
    difference = np.abs(logits - lite0_reference["logits"]).max()
    print(f"imagenet_logits max abs diff vs PyTorch: {difference:.2e}")
    assert logits.shape == (4, 1000)
    assert difference <= TOLERANCE
    assert (logits.argmax(axis=1) == lite0_reference["logits"].argmax(axis=1)).all()


def test_feature_vector_matches_the_reference_through_call_and_serving_default(
    tf: ModuleType, loaded: Any, lite0_reference: dict
) -> None:
    images = tf.constant(_inputs(lite0_reference))
    served = loaded.signatures["serving_default"](images=images)["feature_vector"].numpy()
    called = loaded(images, training=False).numpy()
    assert served.shape == called.shape == (4, 1280)
    assert np.abs(served - lite0_reference["features"]).max() <= TOLERANCE
    np.testing.assert_allclose(called, served, atol=1e-5)


@pytest.mark.parametrize(("photo", "expected"), [("chelsea", CATS), ("coffee", COFFEE)])
def test_real_photos_are_recognised(tf: ModuleType, loaded: Any, photo: str, expected: set[int]) -> None:
    image = eval_preprocess(getattr(skimage.data, photo)())
    logits = loaded.signatures["imagenet_logits"](images=tf.constant(image[None]))["logits"].numpy()[0]
    top5 = [int(i) for i in np.argsort(-logits)[:5]]
    print(f"{photo} top-5 ImageNet classes: {top5}")
    assert expected & set(top5)


def test_manifest_and_fingerprint_identify_the_build(lite0_saved_model: Path) -> None:
    manifest = read_manifest(lite0_saved_model)
    assert manifest["fingerprint"] == backbone_fingerprint(resolve_backbone("efficientnet_lite0"))
    assert manifest["output_dim"] == 1280 and manifest["input_range"] == [0.0, 1.0]
    assert backbone_fingerprint(resolve_backbone(str(lite0_saved_model))) == manifest["fingerprint"]


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
