"""Using a trained model: finding its serving SavedModel and classifying image files with it.

A model can be named by its serving SavedModel folder, its model folder (``models/<name>``), the train stage's
output folder or a run folder (the best model by ``summary.json``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubpipe.components.train.export import CLASSES, MAX_PIXELS, SERVING_INPUT
from hubpipe.components.train.layout import MODELS_DIR, PROBABILITIES, SERVING_DIR, STAGE, SUMMARY_FILE
from hubpipe.components.train.pixel_limit import declared_pixels, too_many_pixels_message
from hubpipe.pipeline.artifacts import read_json
from hubpipe.pipeline.config import DataConfig
from hubpipe.pipeline.errors import DataError, UsageError
from hubpipe.pipeline.runtime import import_tensorflow

LOG = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
SAVED_MODEL_FILE = "saved_model.pb"


@dataclass(frozen=True)
class Prediction:
    """The top classes of one image file, or why it could not be classified."""

    path: Path
    top: list[tuple[str, float]]
    error: str | None = None


def _best_model_dir(train_dir: Path) -> Path:
    try:
        best = read_json(train_dir / SUMMARY_FILE)["best_model"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UsageError(f"{train_dir / SUMMARY_FILE} is unreadable or names no best model") from None
    return train_dir / MODELS_DIR / str(best)


def resolve_serving_dir(model: Path) -> Path:
    """The serving SavedModel folder that ``model`` names; UsageError if it names none."""
    if not model.exists():
        raise UsageError(f"no model at {model}")
    candidates = [model, model / SERVING_DIR]
    for train_dir in (model, model / STAGE):
        if (train_dir / SUMMARY_FILE).is_file():
            candidates.append(_best_model_dir(train_dir) / SERVING_DIR)
            break
    for candidate in candidates:
        if (candidate / SAVED_MODEL_FILE).is_file():
            return candidate
    raise UsageError(f"{model} is not a serving SavedModel, a model folder (models/<name>) or a run folder")


def collect_images(paths: Sequence[Path]) -> list[Path]:
    """Files as given, and the image files (by suffix) found under directories, each directory sorted."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            files.append(path)
    return files


def model_pixel_cap(loaded: Any) -> int:
    """The pixel cap a serving model was saved with (models saved before it was recorded: the default)."""
    variable = getattr(loaded, MAX_PIXELS, None)
    return int(variable.numpy()) if variable is not None else DataConfig.max_pixels


def _read_image(tf: Any, path: Path, max_pixels: int) -> tuple[bytes | None, str | None]:
    """The file's bytes if TensorFlow can decode them as an image, else the reason it cannot.

    The header is checked against ``max_pixels`` before anything is decoded.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, exc.strerror or str(exc)
    try:
        if int(declared_pixels(tf, tf.constant(data))) > max_pixels:
            return None, too_many_pixels_message(max_pixels)
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, ValueError):
        return None, "not a readable JPEG, PNG, GIF or BMP image"
    return data, None


def classify_files(serving_dir: Path, files: Sequence[Path], top_k: int, batch_size: int = 32) -> Iterator[Prediction]:
    """The ``top_k`` classes of every file, in order; unreadable files yield a Prediction with ``error``."""
    tf = import_tensorflow()
    loaded = tf.saved_model.load(str(serving_dir))
    serve, max_pixels = loaded.signatures["serving_default"], model_pixel_cap(loaded)
    for start in range(0, len(files), batch_size):
        batch = files[start : start + batch_size]
        predictions: dict[int, Prediction] = {}
        readable: list[tuple[int, bytes]] = []
        for index, path in enumerate(batch):
            data, error = _read_image(tf, path, max_pixels)
            if data is None:
                predictions[index] = Prediction(path, [], error)
            else:
                readable.append((index, data))
        if readable:
            tops = _top_classes(tf, serve, [data for _, data in readable], top_k)
            for (index, _), top in zip(readable, tops, strict=True):
                predictions[index] = Prediction(batch[index], top)
        yield from (predictions[index] for index in range(len(batch)))


def _top_classes(tf: Any, serve: Any, encoded: Sequence[bytes], top_k: int) -> list[list[tuple[str, float]]]:
    """The ``top_k`` (class, probability) pairs of each encoded image, by a serving signature."""
    outputs = serve(**{SERVING_INPUT: tf.constant(list(encoded))})
    probabilities, classes = outputs[PROBABILITIES].numpy(), outputs[CLASSES].numpy()
    tops = []
    for row, names in zip(probabilities, classes, strict=True):
        order = row.argsort()[::-1][:top_k]
        tops.append([(names[i].decode("utf-8"), float(row[i])) for i in order])
    return tops


def classify_encoded(
    serving_dir: Path, encoded: Sequence[bytes], top_k: int, batch_size: int = 32
) -> list[list[tuple[str, float]]]:
    """The ``top_k`` classes of each encoded image (JPEG, PNG, GIF or BMP bytes); DataError names the first
    image the model cannot decode."""
    tf = import_tensorflow()
    serve = tf.saved_model.load(str(serving_dir)).signatures["serving_default"]
    for position, data in enumerate(encoded):
        try:
            tf.io.decode_image(data, channels=3, expand_animations=False)
        except (tf.errors.InvalidArgumentError, ValueError):
            raise DataError(f"image #{position} is not a readable JPEG, PNG, GIF or BMP image") from None
    tops: list[list[tuple[str, float]]] = []
    for start in range(0, len(encoded), batch_size):
        tops.extend(_top_classes(tf, serve, encoded[start : start + batch_size], top_k))
    return tops
