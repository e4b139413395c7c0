"""The classifier head on feature vectors: built by train, and rebuilt by evaluate to read a published head's
weights (never its Keras config). TensorFlow is passed in as ``tf`` so that importing this stays cheap."""

from __future__ import annotations

from typing import Any

#: The head's only layer: its name in the checkpoint and in the serving model.
HEAD_LAYER = "probabilities"


def build_head(tf: Any, feature_dim: int, num_classes: int) -> Any:
    """The classifier head: features -> probabilities (one Dense softmax layer, as in the classic recipe)."""
    features = tf.keras.Input(shape=(feature_dim,), dtype="float32", name="features")
    probabilities = tf.keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name=HEAD_LAYER)(features)
    return tf.keras.Model(features, probabilities, name="head")
