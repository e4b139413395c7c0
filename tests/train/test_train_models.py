"""Model builders: the baseline's architecture, and which backbone variables fine-tuning unfreezes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from hubpipe.components.backbones import load_feature_extractor, resolve_backbone
from hubpipe.components.common.head import build_head
from hubpipe.components.train import models
from hubpipe.pipeline.core.errors import StageError
from hubpipe.pipeline.core.runtime import import_tensorflow


def fake(name: str) -> SimpleNamespace:
    return SimpleNamespace(name=name)


def test_top_layers_are_counted_from_the_end_without_batch_norm() -> None:
    variables = [
        fake(name)
        for name in (
            "stem_conv/kernel:0",
            "stem_bn/gamma:0",
            "stem_bn/beta:0",
            "block1_conv/kernel:0",
            "block1_conv/bias:0",
            "block1_bn/gamma:0",
            "head_conv/kernel:0",
            "head_bn/gamma:0",
            "head_bn/beta:0",
        )
    ]
    names = lambda n: [v.name for v in models.top_layer_variables(variables, n)]  # noqa: E731
    assert names(1) == ["head_conv/kernel:0"]
    assert names(2) == ["block1_conv/kernel:0", "block1_conv/bias:0", "head_conv/kernel:0"]
    assert len(names(99)) == 4
    assert names(0) == []


def test_scratch_cnn_is_the_classic_two_block_network() -> None:
    tf = import_tensorflow()
    model = models.build_scratch_cnn(tf, 64, 5)
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == ["Conv2D", "Conv2D", "MaxPooling2D", "Conv2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense"]
    convs = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Conv2D)]
    assert {(c.filters, c.kernel_size, c.activation.__name__) for c in convs} == {(10, (3, 3), "relu")}
    assert model.output_shape == (None, 5)


def test_fine_tuning_changes_only_the_top_layer_and_keeps_batch_norm_frozen(tiny_backbone: Path) -> None:
    tf = import_tensorflow()
    extractor = load_feature_extractor(resolve_backbone(str(tiny_backbone)))
    backbone = models.tunable_backbone(tf, extractor, 1)
    features = models.feature_model(tf, backbone, 32, (0.0, 1.0))
    classifier = models.image_classifier(tf, features, build_head(tf, 16, 3))
    models.compile_classifier(tf, classifier, 0.1)
    before = {v.name: v.numpy().copy() for v in extractor.weights}
    assert sorted(v.name for v in backbone.trainable_weights) == ["conv2/bias:0", "conv2/kernel:0"]

    images = np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32)
    classifier.fit(images, np.arange(8) % 3, epochs=2, verbose=0)
    changed = {v.name for v in extractor.weights if not np.array_equal(before[v.name], v.numpy())}
    assert changed == {"conv2/bias:0", "conv2/kernel:0"}


def test_a_backbone_without_trainable_variables_cannot_be_fine_tuned(tiny_backbone: Path) -> None:
    tf = import_tensorflow()
    extractor = load_feature_extractor(resolve_backbone(str(tiny_backbone)))
    with pytest.raises(StageError, match="cannot be fine-tuned"):
        models.tunable_backbone(tf, extractor, 0)


def test_input_range_is_mapped_before_the_backbone() -> None:
    tf = import_tensorflow()
    identity = tf.keras.layers.Lambda(lambda x: tf.reduce_mean(x, axis=[1, 2]))
    model = models.feature_model(tf, identity, 4, (-1.0, 1.0))
    out = model(np.ones((1, 4, 4, 3), np.float32) * 0.25).numpy()
    assert np.allclose(out, -0.5)
