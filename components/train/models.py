"""Model builders, free of side effects: the from-scratch CNN, augmentation, the image classifier around a head
(:mod:`hubpipe.components.common.head`), and the backbone wrappers for training through a frozen or partly
unfrozen feature extractor.

Every image model takes float32 ``[b, size, size, 3]`` in [0, 1] (see :mod:`.inputs`) and returns softmax
probabilities in float32, also under the ``mixed_float16`` policy (the last layer is float32). TensorFlow
is passed in as ``tf`` so that importing this module stays cheap.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from hubpipe.pipeline.core.errors import StageError

#: Variable names (the last part of ``layer/variable``) of BatchNormalization; they stay frozen when fine-tuning.
BATCH_NORM_VARIABLES = ("gamma", "beta", "moving_mean", "moving_variance")
SCRATCH_FILTERS = 10
SCRATCH_KERNEL = 3


def build_scratch_cnn(tf: Any, image_size: int, num_classes: int) -> Any:
    """The small CNN of the classic course, trained from scratch as the no-transfer baseline.

    Inputs are already in [0, 1], which is what the course's ``Rescaling(1/255)`` produced.
    """
    layers = tf.keras.layers
    images = tf.keras.Input(shape=(image_size, image_size, 3), dtype="float32", name="images")
    x = images
    for block in range(2):
        for conv in range(2):
            x = layers.Conv2D(SCRATCH_FILTERS, SCRATCH_KERNEL, activation="relu", name=f"conv{block + 1}_{conv + 1}")(x)
        x = layers.MaxPool2D(name=f"pool{block + 1}")(x)
    x = layers.Flatten(name="flatten")(x)
    probabilities = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return tf.keras.Model(images, probabilities, name="scratch_cnn")


def build_augmentation(tf: Any, seed: int) -> Any:
    """Random flip, rotation and zoom; active only when called with ``training=True``."""
    layers = tf.keras.layers
    return tf.keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed, name="flip"),
            layers.RandomRotation(0.2, seed=seed + 1, name="rotation"),
            layers.RandomZoom(0.2, seed=seed + 2, name="zoom"),
        ],
        name="augmentation",
    )


def layer_name(variable: Any) -> str:
    """``block15_project_conv/kernel:0`` -> ``block15_project_conv``."""
    return variable.name.rsplit("/", 1)[0] if "/" in variable.name else variable.name.split(":")[0]


def is_batch_norm(variable: Any) -> bool:
    return variable.name.rsplit("/", 1)[-1].split(":")[0] in BATCH_NORM_VARIABLES


def top_layer_variables(variables: Sequence[Any], num_layers: int) -> list[Any]:
    """The variables of the last ``num_layers`` layers (in the backbone's variable order), BatchNorm excluded."""
    groups: dict[str, list[Any]] = {}
    for variable in variables:
        if not is_batch_norm(variable):
            groups.setdefault(layer_name(variable), []).append(variable)
    chosen = list(groups)[-num_layers:] if num_layers > 0 else []
    return [variable for name in chosen for variable in groups[name]]


def backbone_variables(extractor: Any) -> list[Any]:
    """The trainable variables the backbone's SavedModel declares (TF Hub's reusable SavedModel convention)."""
    return list(getattr(extractor.resolved_object, "trainable_variables", []))


@functools.cache
def _tunable_backbone_class(tf: Any) -> type:
    class TunableBackbone(tf.keras.layers.Layer):
        """A frozen ``hub.KerasLayer`` of which only the chosen variables train.

        The wrapped layer is always called with ``training=False``, so BatchNorm keeps its moving statistics
        and dropout stays off; gradients reach the chosen variables because nothing stops them.
        """

        def __init__(self, extractor: Any, tuned: Sequence[Any], **kwargs: Any):
            super().__init__(dtype="float32", **kwargs)
            self.extractor = extractor
            self._tuned_ids = frozenset(id(v) for v in tuned)

        @property
        def trainable_weights(self) -> list[Any]:
            if not self.trainable:
                return []
            return [v for v in self.extractor.weights if id(v) in self._tuned_ids]

        @property
        def non_trainable_weights(self) -> list[Any]:
            tuned = {id(v) for v in self.trainable_weights}
            return [v for v in self.extractor.weights if id(v) not in tuned]

        def call(self, images: Any) -> Any:
            return self.extractor(images, training=False)

    return TunableBackbone


def tunable_backbone(tf: Any, extractor: Any, num_layers: int) -> Any:
    """Wraps a frozen extractor so that its top ``num_layers`` layers (BatchNorm excluded) train."""
    tuned = top_layer_variables(backbone_variables(extractor), num_layers)
    if not tuned:
        raise StageError(f"backbone {extractor.name} exposes no trainable variables, so it cannot be fine-tuned")
    return _tunable_backbone_class(tf)(extractor, tuned, name="tunable_backbone")


def feature_model(tf: Any, backbone: Any, input_size: int, input_range: tuple[float, float]) -> Any:
    """Images in [0, 1] -> feature vectors, mapping the pixels to the backbone's input range first."""
    images = tf.keras.Input(shape=(input_size, input_size, 3), dtype="float32", name="images")
    x = images
    low, high = input_range
    if (low, high) != (0.0, 1.0):
        x = tf.keras.layers.Rescaling(high - low, offset=low, dtype="float32", name="input_range")(x)
    features = backbone(x)  # a frozen hub.KerasLayer or a TunableBackbone: both run in inference mode
    features = tf.keras.layers.Activation("linear", dtype="float32", name="features")(features)
    return tf.keras.Model(images, features, name="feature_extractor")


def image_classifier(tf: Any, features: Any, head: Any, augmentation: Any | None = None) -> Any:
    """Images -> probabilities: optional augmentation, then a feature model, then the head."""
    images = tf.keras.Input(shape=features.input_shape[1:], dtype="float32", name="images")
    x = augmentation(images) if augmentation is not None else images
    probabilities = head(features(x))
    return tf.keras.Model(images, probabilities, name="classifier")


def compile_classifier(tf: Any, model: Any, learning_rate: float) -> None:
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
