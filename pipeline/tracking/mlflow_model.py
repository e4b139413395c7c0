"""The MLflow pyfunc model of a hubpipe serving SavedModel, logged as a "model from code".

MLflow stores this file with the model, so loading the model needs TensorFlow and MLflow, not hubpipe. Input:
a DataFrame with an ``image`` column of encoded image bytes (JPEG, PNG, GIF or BMP); output: one row per
image with the most probable ``label`` and its ``probability``. The SavedModel is the ``serving`` artifact.
"""

from __future__ import annotations

from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel

SERVING_ARTIFACT = "serving"
# The serving signature's names are hubpipe.components.train.export's (not imported: this file runs without hubpipe).
SERVING_INPUT, PROBABILITIES, CLASSES = "images", "probabilities", "classes"


class ServingModel(PythonModel):
    """Encoded images in, top label and probability out."""

    def load_context(self, context: Any) -> None:
        import tensorflow as tf

        self._tf = tf
        self._serve = tf.saved_model.load(context.artifacts[SERVING_ARTIFACT]).signatures["serving_default"]

    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        import pandas as pd

        images = [bytes(image) for image in model_input["image"]]
        outputs = self._serve(**{SERVING_INPUT: self._tf.constant(images)})
        probabilities, classes = outputs[PROBABILITIES].numpy(), outputs[CLASSES].numpy()
        best = probabilities.argmax(axis=1)
        return pd.DataFrame(
            {
                "label": [names[i].decode("utf-8") for names, i in zip(classes, best, strict=True)],
                "probability": probabilities[range(len(best)), best].astype(float),
            }
        )


mlflow.models.set_model(ServingModel())
