"""Saving a Keras model in TF Hub's reusable SavedModel form for image feature vectors.

``tensorflow_hub.KerasLayer`` loads such a directory as a layer: it calls ``__call__(images, training)`` and
reads ``variables``, ``trainable_variables`` and ``regularization_losses``. The offline backbone and the tests'
tiny backbones are both saved this way.
"""

from __future__ import annotations

from typing import Any


def feature_vector_root(tf: Any, model: Any, image_spec: Any) -> Any:
    """The object to save with ``tf.saved_model.save``: ``__call__`` traced for ``training`` False and True on
    ``image_spec``, with the model's variables and no regularization losses. Add more attributes before saving.
    """

    @tf.function
    def call(images: Any, training: bool = False) -> Any:
        return model(images, training=training)

    for training in (False, True):
        call.get_concrete_function(image_spec, training=training)
    root = tf.train.Checkpoint()
    root.variables = list(model.variables)
    root.trainable_variables = list(model.trainable_variables)
    root.regularization_losses = []
    root.__call__ = call
    return root
