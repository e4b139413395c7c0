"""What a trained model leaves behind: the serving SavedModel, the head, labels, predictions, TFLite files.

The serving SavedModel's ``serving_default`` signature takes a batch of encoded images (``images``: tf.string
``[b]``, JPEG, PNG, GIF or BMP bytes) and prepares them exactly as training did (:mod:`.inputs`). It returns

* ``probabilities``: float32 ``[b, C]``, columns in label order,
* ``labels``: string ``[b]``, the most likely class name,
* ``label_ids``: int64 ``[b]``, its index,
* ``classes``: string ``[b, C]``, the class name of each column (as TF Serving's classify API does),

and carries ``labels.txt`` as an asset, so the folder is usable on its own. An input whose header declares more
pixels than ``data.max_pixels`` is refused before decoding (:mod:`.pixel_limit`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hubpipe.components.train.inputs import decode_and_resize
from hubpipe.components.train.layout import PROBABILITIES, TFLITE_FILE, TFLITE_QUANTIZED_FILE
from hubpipe.components.train.pixel_limit import check_pixels
from hubpipe.pipeline.core.artifacts import write_text_atomic

SERVING_INPUT = "images"
LABELS = "labels"
LABEL_IDS = "label_ids"
CLASSES = "classes"
MAX_PIXELS = "max_pixels"
#: The attribute the serving module keeps the classifier's variables under (in ``classifier.variables`` order).
CLASSIFIER_VARIABLES = "classifier_variables"


def write_labels(path: Path, class_names: Sequence[str]) -> None:
    write_text_atomic(path, "".join(f"{name}\n" for name in class_names))


def save_serving_model(
    tf: Any,
    classifier: Any,
    *,
    class_names: Sequence[str],
    input_size: int,
    path: Path,
    labels_file: Path,
    max_pixels: int,
) -> None:
    """Saves ``classifier`` (images in [0, 1] -> probabilities) behind a signature that takes encoded images.

    An image whose header declares more than ``max_pixels`` fails the call with InvalidArgumentError before
    it is decoded; the cap is also stored in the folder (the ``max_pixels`` variable), for serving systems that
    load the folder. ``hubpipe predict`` runs none of it: it rebuilds the model (:mod:`.serving`) and reads the
    weights with :func:`restore_classifier_weights`.
    """
    names = tf.constant(list(class_names))
    pixels_spec = tf.TensorSpec([input_size, input_size, 3], tf.float32)

    def prepare(encoded: Any) -> Any:
        with tf.control_dependencies([check_pixels(tf, encoded, max_pixels)]):
            return decode_and_resize(tf, encoded, input_size)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=SERVING_INPUT)])
    def serve(images: Any) -> dict[str, Any]:
        pixels = tf.map_fn(prepare, images, fn_output_signature=pixels_spec)
        probabilities = tf.cast(classifier(pixels, training=False), tf.float32)
        label_ids = tf.argmax(probabilities, axis=-1)
        return {
            PROBABILITIES: probabilities,
            LABELS: tf.gather(names, label_ids),
            LABEL_IDS: label_ids,
            CLASSES: tf.broadcast_to(names, tf.shape(probabilities)),
        }

    module = tf.Module()
    # Tracking the variables rather than the Keras model skips Keras' per-layer serialisation (seconds per model);
    # ``serve`` is the only function the folder needs.
    setattr(module, CLASSIFIER_VARIABLES, list(classifier.variables))
    module.labels_file = tf.saved_model.Asset(str(labels_file))
    module.max_pixels = tf.Variable(max_pixels, dtype=tf.int64, trainable=False, name=MAX_PIXELS)
    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})


def restore_classifier_weights(tf: Any, classifier: Any, serving_dir: Path) -> Any:
    """``classifier`` (built by hubpipe's code as training built it) with the weights of a serving folder.

    Only tensors are read (the checkpoint reader), by position in ``classifier.variables``; a count or shape
    that differs raises ValueError. Returns ``classifier``.
    """
    reader = tf.train.load_checkpoint(str(serving_dir / "variables" / "variables"))
    stored = reader.get_variable_to_shape_map()
    keys = [f"{CLASSIFIER_VARIABLES}/{i}/.ATTRIBUTES/VARIABLE_VALUE" for i in range(len(classifier.variables))]
    count = sum(1 for key in stored if key.startswith(f"{CLASSIFIER_VARIABLES}/"))
    if count != len(keys):
        raise ValueError(f"the serving folder holds {count} weights, the model built for it {len(keys)}")
    for variable, key in zip(classifier.variables, keys, strict=True):
        if list(stored[key]) != variable.shape.as_list():
            raise ValueError(
                f"weight {key.split('/')[1]} ({variable.name}) has shape {stored[key]}, not {variable.shape}"
            )
        variable.assign(reader.get_tensor(key))
    return classifier


def save_head(head: Any, path: Path) -> None:
    """The head alone (features -> probabilities), loadable with ``tf.keras.models.load_model``."""
    head.save(str(path), include_optimizer=False, save_format="tf")


def save_predictions(path: Path, ids: np.ndarray, labels: np.ndarray, probabilities: np.ndarray) -> None:
    """Test-split predictions: ``ids`` (str), ``labels`` (int64), ``probabilities`` (float32 [n, C])."""
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, ids=ids.astype(str), labels=labels.astype(np.int64), probabilities=probabilities.astype(np.float32))
    tmp.replace(path)


def export_tflite(tf: Any, classifier: Any, folder: Path) -> dict[str, str]:
    """Float and dynamic-range quantised TFLite models of ``classifier`` (float images in [0, 1] in).

    TFLite has no image decoder, so these take decoded, resized pixels; the caller prepares them.
    """
    written: dict[str, str] = {}
    for filename, optimize in ((TFLITE_FILE, False), (TFLITE_QUANTIZED_FILE, True)):
        converter = tf.lite.TFLiteConverter.from_keras_model(classifier)
        if optimize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        (folder / filename).write_bytes(converter.convert())
        written["tflite_quantized" if optimize else "tflite"] = filename
    return written
