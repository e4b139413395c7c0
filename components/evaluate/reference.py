"""Scoring the last blessed model on this run's test split.

Its accuracy on its own test split says little about this one, so the blessed model is run again here:

* when it is a head trained on frozen backbone features (``mode: feature_extraction``) and a candidate of
  this run uses the same backbone (same fingerprint and input size), its head is applied to that
  candidate's test feature vectors in the vector store (a chunk at a time): no backbone pass at all. The
  head is built by this code and only its weights are read from the publish root (never
  ``tf.keras.models.load_model``, which would rebuild whatever layers, Python code included, whoever can
  write there put in the folder);
* otherwise its stored test predictions are used (``test_predictions.npz``, published with the model: rows
  keyed by example id, the sha256 of the image bytes), when they cover every example of this test split. No
  model file from the publish root is loaded or run: a SavedModel is a graph whose ops can read and write
  files, and whoever can write to the publish root would choose them. Stored predictions that do not cover
  this split (the test data changed) are not compared, and the check against the blessed model is skipped
  with that reason; a forged file can only mislead the gate, as a forged ``LATEST`` could.

Its classes may be listed in another order (columns are reordered); a model that knows other classes is not
compared, and the check against it is skipped with that reason.

A blessed version that lacks what scoring it needs (``labels.txt``, ``model.json``, the head's weights, the
stored predictions) or holds them unreadable is damage, not a reason to skip: the evaluation stops with
:class:`~hubpipe.pipeline.core.errors.PublishRootDamaged` rather than bless a candidate unchecked.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hubpipe.components.common import storage
from hubpipe.components.common.head import head_from_weights
from hubpipe.components.common.publish_root import PublishedVersion, damaged
from hubpipe.components.common.split_vectors import line_up, stored_test_split
from hubpipe.components.common.text import first_line
from hubpipe.components.evaluate.candidates import TrainedModel, read_predictions
from hubpipe.components.evaluate.metrics import ClassificationMetrics, classification_metrics
from hubpipe.components.train.layout import FEATURE_EXTRACTION, HEAD_DIR, LABELS_FILE, MODEL_FILE, PREDICTIONS_FILE
from hubpipe.pipeline.core.errors import PublishRootDamaged, StageError

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class TestSplit:
    """What every model is scored on: the candidates' test ids and labels, and where the examples are."""

    ids: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    ingest_dir: Path
    vector_store: str  # where the candidates' test vectors are (see components/common/vector_store.py)


@dataclass(frozen=True)
class ReferenceScore:
    version: str | None
    metrics: ClassificationMetrics | None
    method: str  # "cached features", "stored predictions", or "" when not scored
    skip_reason: str = ""
    hits: np.ndarray | None = None  # bool per test example of the split: what the paired checks compare


def _damaged(reference: PublishedVersion, problem: str) -> PublishRootDamaged:
    return damaged(reference.root, reference.version, "the last blessed model", problem)


def _version_file(reference: PublishedVersion, name: str) -> bytes:
    """A file of the blessed version; :class:`PublishRootDamaged` when it is missing or unreadable."""
    try:
        data = storage.read_bytes(storage.join(reference.path, name))
    except OSError as exc:
        raise _damaged(reference, f"has an unreadable {name} ({exc.strerror or exc})") from None
    if data is None:
        raise _damaged(reference, f"has no {name}")
    return data


def _model_info(reference: PublishedVersion) -> dict[str, Any]:
    """The blessed version's ``model.json``; :class:`PublishRootDamaged` when it is missing or malformed."""
    try:
        info = json.loads(_version_file(reference, MODEL_FILE))
    except ValueError:
        info = None
    if not isinstance(info, dict):
        raise _damaged(reference, f"has a malformed {MODEL_FILE}")
    return info


def _column_order(reference: PublishedVersion, class_names: list[str]) -> list[int] | None:
    """Where each of this run's classes is among the blessed model's outputs; None if the classes differ."""
    try:
        text = _version_file(reference, LABELS_FILE).decode("utf-8")
    except UnicodeDecodeError:
        raise _damaged(reference, f"has a malformed {LABELS_FILE}") from None
    labels = [line for line in text.split("\n") if line]
    if sorted(labels) != sorted(class_names) or len(set(labels)) != len(labels):
        return None
    return [labels.index(name) for name in class_names]


def _twin_candidate(info: dict[str, Any], candidates: list[TrainedModel]) -> TrainedModel | None:
    """A candidate whose cached test vectors the blessed model's head can take as they are."""
    if info.get("mode") != FEATURE_EXTRACTION or not (info.get("files") or {}).get("head", HEAD_DIR):
        return None
    for candidate in candidates:
        same_backbone = candidate.info.get("backbone_fingerprint") == info.get("backbone_fingerprint")
        same_input = candidate.info.get("input_size") == info.get("input_size")
        if same_backbone and same_input and candidate.info.get("vector_space"):
            return candidate
    return None


def _head_probabilities(
    tf: Any, reference: PublishedVersion, twin: TrainedModel, split: TestSplit
) -> np.ndarray | None:
    stored = stored_test_split(tf, split.vector_store, str(twin.info["vector_space"]), split.ingest_dir, split.ids)
    if stored is None:
        return None
    head = head_from_weights(tf, storage.join(reference.path, HEAD_DIR))
    parts = [head.predict(vectors, batch_size=256, verbose=0) for vectors, _ in stored.chunks()]
    return np.asarray(np.concatenate(parts), dtype=np.float64)


def _stored_probabilities(reference: PublishedVersion, split: TestSplit, num_classes: int) -> np.ndarray | str:
    """The published test predictions in this split's row order, or why they cannot be used."""
    data = _version_file(reference, PREDICTIONS_FILE)
    stored = read_predictions(io.BytesIO(data), num_classes, name=storage.join(reference.path, PREDICTIONS_FILE))
    order = line_up(stored.ids, split.ids)
    if order is None:
        covered = len(set(split.ids.tolist()) & set(stored.ids.tolist()))
        return (
            f"the blessed model {reference.version}'s stored test predictions cover {covered} of the "
            f"{len(split.ids)} test examples of this run (the test data changed)"
        )
    return stored.probabilities[order]


def score_reference(
    reference: PublishedVersion | None, candidates: list[TrainedModel], split: TestSplit
) -> ReferenceScore:
    """The blessed model's metrics on this test split, or why it is not compared."""
    if reference is None:
        return ReferenceScore(None, None, "", "no blessed model in the publish root yet")
    order = _column_order(reference, split.class_names)
    if order is None:
        reason = f"the blessed model {reference.version} was trained on other classes"
        return ReferenceScore(reference.version, None, "", reason)
    from hubpipe.pipeline.core.runtime import import_tensorflow

    tf = import_tensorflow()
    twin = _twin_candidate(_model_info(reference), candidates)
    try:
        probabilities = _head_probabilities(tf, reference, twin, split) if twin is not None else None
        method = "cached features"
        if probabilities is None:
            probabilities, method = _stored_probabilities(reference, split, len(order)), "stored predictions"
    except (StageError, OSError, ValueError, KeyError, tf.errors.OpError) as exc:
        raise _damaged(reference, f"cannot be scored ({first_line(exc, 300)})") from exc
    if isinstance(probabilities, str):
        return ReferenceScore(reference.version, None, "", probabilities)
    LOG.info("blessed model %s scored on this test split (%s)", reference.version, method)
    ordered = probabilities[:, order]
    metrics = classification_metrics(split.labels, ordered, split.class_names)
    return ReferenceScore(reference.version, metrics, method, hits=ordered.argmax(axis=1) == split.labels)
