"""The train stage's artifact folder and model records: the names evaluate, publish, the run report and
``hubpipe predict`` read it by.

::

    models/<name>/serving/                 SavedModel: encoded image bytes in -> probabilities, labels, classes
    models/<name>/head/                    classifier head on feature vectors (feature-extraction models)
    models/<name>/labels.txt               class names, one a line
    models/<name>/model.json               what the model is (kind, mode, backbone, vector_space, accuracy)
    models/<name>/test_predictions.npz     test-split probabilities, labels and ids
    models/<name>/model*.tflite            with train.export_tflite
    logs/<name>/                           TensorBoard logs
    summary.json                           one row per model; the best by test accuracy
"""

from __future__ import annotations

STAGE = "train"
MODELS_DIR = "models"
LOGS_DIR = "logs"
SUMMARY_FILE = "summary.json"

SERVING_DIR = "serving"
HEAD_DIR = "head"
LABELS_FILE = "labels.txt"
MODEL_FILE = "model.json"
PREDICTIONS_FILE = "test_predictions.npz"
TFLITE_FILE = "model.tflite"
TFLITE_QUANTIZED_FILE = "model_dynamic_range.tflite"

#: The serving signature's output that holds the class probabilities.
PROBABILITIES = "probabilities"

#: model.json ``kind``: a head on a pretrained backbone, or the from-scratch baseline.
TRANSFER, SCRATCH = "transfer", "scratch"
#: model.json ``mode``: how the model was trained.
FEATURE_EXTRACTION, FINE_TUNED, FROM_SCRATCH = "feature_extraction", "fine_tuned", "from_scratch"

#: The stage's artifacts (name -> path in its folder), as its manifest lists them.
ARTIFACTS = {"models": MODELS_DIR, "logs": LOGS_DIR, "summary": SUMMARY_FILE}
