"""The classifier head on feature vectors: built by train, and rebuilt by evaluate and ``hubpipe predict`` to read
a saved head's weights (never its Keras config). TensorFlow is passed in as ``tf`` so that importing this stays
cheap."""

from __future__ import annotations

from typing import Any

#: The head's only layer: its name in the checkpoint and in the serving model.
HEAD_LAYER = "probabilities"
#: Where a compiled Keras model keeps its metrics' counters in a checkpoint (not read).
METRIC_VARIABLES = "keras_api/metrics/"


def build_head(tf: Any, feature_dim: int, num_classes: int) -> Any:
    """The classifier head: features -> probabilities (one Dense softmax layer, as in the classic recipe)."""
    features = tf.keras.Input(shape=(feature_dim,), dtype="float32", name="features")
    probabilities = tf.keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name=HEAD_LAYER)(features)
    return tf.keras.Model(features, probabilities, name="head")


def head_from_weights(tf: Any, head_dir: str) -> Any:
    """The head architecture built by this code, with only the weights read from the saved head's folder.

    ``tf.keras.models.load_model`` would rebuild whatever layers the folder describes (a Lambda layer carries
    Python code); the checkpoint reader reads tensors only. The training metrics' counters that a compiled
    head carries are not read; any other layer than one Dense layer's kernel and bias is refused.
    """
    reader = tf.train.load_checkpoint(f"{head_dir.rstrip('/')}/variables/variables")
    shapes = {
        key: shape
        for key, shape in reader.get_variable_to_shape_map().items()
        if key != "_CHECKPOINTABLE_OBJECT_GRAPH" and not key.startswith(METRIC_VARIABLES)
    }
    kernel_key, bias_key = (f"layer_with_weights-0/{name}/.ATTRIBUTES/VARIABLE_VALUE" for name in ("kernel", "bias"))
    if set(shapes) != {kernel_key, bias_key} or len(shapes[kernel_key]) != 2:
        raise ValueError(f"the head in {head_dir} is not one Dense layer (variables: {sorted(shapes)[:4]})")
    feature_dim, num_classes = shapes[kernel_key]
    head = build_head(tf, feature_dim, num_classes)
    head.get_layer(HEAD_LAYER).set_weights([reader.get_tensor(kernel_key), reader.get_tensor(bias_key)])
    return head
