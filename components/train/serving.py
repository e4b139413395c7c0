"""Using a trained model: finding it, and classifying images with code hubpipe can vouch for.

A model is named by its model folder (``models/<name>``: model.json, labels.txt, head/, serving/), its
serving folder, the train stage's output folder, a run folder (the best model by ``summary.json``) or a publish
root (the blessed version its ``models/LATEST`` names).

Loading a SavedModel runs its graph, whose ops can read and write files: whoever wrote the folder chooses
what runs (and its ``max_pixels`` variable). So a hubpipe model folder's classifier is rebuilt here by
hubpipe's code, and only tensors are read from the folder:

* feature extraction: the backbone named in model.json, resolved through the backbone registry (a preset,
  or a handle the configuration names) and loaded as training loaded it, its fingerprint checked against
  model.json's; then the head built by :func:`~hubpipe.components.common.head.build_head` with the head's
  weights (a checkpoint read, as evaluate reads a published head);
* fine-tuned: the same backbone and head architecture, with every weight read from the serving folder's
  variables (:func:`~hubpipe.components.train.export.restore_classifier_weights`);
* from scratch (``scratch_cnn``): the CNN of :func:`~hubpipe.components.train.models.build_scratch_cnn`, its
  weights read likewise.

Images are read and decoded by hubpipe's code (:func:`~hubpipe.components.train.inputs.decode_and_resize`),
after two checks with the limits of hubpipe's configuration, never the model's: the file's size
(``data.max_file_bytes``, before it is read) and the pixels its header declares (``data.max_pixels``,
before it is decoded). Formats TensorFlow does not decode as ingest stored them (WebP, TIFF, AVIF, CMYK JPEG,
16-bit PNG, transparency) are converted first exactly as ingest converted the training images
(:mod:`hubpipe.components.common.image_formats`). A SavedModel that is not in a hubpipe model folder is loaded
only when the caller trusts it (``hubpipe predict --trust-saved-model``); the same checks apply before its graph
sees an image.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hubpipe.components.backbones import (
    BackboneSpec,
    backbone_fingerprint,
    list_backbones,
    load_feature_extractor,
    resolve_backbone,
)
from hubpipe.components.common.head import build_head, head_from_weights
from hubpipe.components.common.image_formats import DESCRIBED, IMAGE_SUFFIXES, ImageRefused, model_input
from hubpipe.components.common.publish_root import LATEST_FILE, TENSORBOARD_DIR, read_latest_id, require_version
from hubpipe.components.common.publish_root import MODELS_DIR as PUBLISHED_MODELS
from hubpipe.components.train import models
from hubpipe.components.train.export import CLASSES, SERVING_INPUT, restore_classifier_weights
from hubpipe.components.train.inputs import decode_and_resize
from hubpipe.components.train.layout import (
    FEATURE_EXTRACTION,
    FINE_TUNED,
    FROM_SCRATCH,
    HEAD_DIR,
    LABELS_FILE,
    MODEL_FILE,
    MODELS_DIR,
    PROBABILITIES,
    SERVING_DIR,
    STAGE,
    SUMMARY_FILE,
)
from hubpipe.components.train.pixel_limit import declared_pixels, too_many_pixels_message
from hubpipe.pipeline.core.artifacts import read_json, read_json_checked
from hubpipe.pipeline.core.config import DataConfig, TrainConfig
from hubpipe.pipeline.core.errors import DataError, UsageError
from hubpipe.pipeline.core.runtime import import_tensorflow

LOG = logging.getLogger(__name__)

SAVED_MODEL_FILE = "saved_model.pb"
#: The flag of ``hubpipe predict`` that lets a SavedModel hubpipe did not write run.
TRUST_FLAG = "--trust-saved-model"
UNREADABLE_IMAGE = f"not a readable {DESCRIBED} image"


@dataclass(frozen=True)
class Prediction:
    """The top classes of one image file, or why it could not be classified."""

    path: Path
    top: list[tuple[str, float]]
    error: str | None = None


@dataclass(frozen=True)
class Classifier:
    """Encoded images in, class probabilities out: ``classify(images) -> (probabilities [b, C], class names)``."""

    classify: Callable[[Sequence[bytes]], tuple[np.ndarray, list[str]]]


def _best_model_dir(train_dir: Path) -> Path:
    try:
        best = read_json(train_dir / SUMMARY_FILE)["best_model"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UsageError(f"{train_dir / SUMMARY_FILE} is unreadable or names no best model") from None
    return train_dir / MODELS_DIR / str(best)


def latest_blessed(root: Path) -> Path | None:
    """The version folder that a publish root's ``models/LATEST`` names (None: ``root`` is no publish root);
    UsageError when nothing is blessed there yet, PublishRootDamaged when LATEST leads nowhere."""
    if (root / PUBLISHED_MODELS / LATEST_FILE).is_file():
        return Path(require_version(str(root), read_latest_id(str(root)) or "", "named by LATEST").path)
    if (root / PUBLISHED_MODELS).is_dir() and (root / TENSORBOARD_DIR).is_dir():
        raise UsageError(f"no model is blessed in the publish root {root} yet (no {PUBLISHED_MODELS}/{LATEST_FILE})")
    return None


def resolve_model_dir(model: Path) -> Path:
    """The hubpipe model folder (with model.json) or else the SavedModel folder that ``model`` names.

    A serving folder inside a model folder names that model folder, a publish root its LATEST blessed version.
    UsageError if it names neither.
    """
    if not model.exists():
        raise UsageError(f"no model at {model}")
    blessed = latest_blessed(model)
    if blessed is not None:
        return blessed
    candidates = [model, model.parent] if model.name == SERVING_DIR else [model]
    for train_dir in (model, model / STAGE):
        if (train_dir / SUMMARY_FILE).is_file():
            candidates.append(_best_model_dir(train_dir))
            break
    for candidate in candidates:
        if (candidate / MODEL_FILE).is_file():
            return candidate
    for candidate in (model, model / SERVING_DIR):
        if (candidate / SAVED_MODEL_FILE).is_file():
            return candidate
    raise UsageError(f"{model} is not a model folder (models/<name>), a run folder or a serving SavedModel")


def collect_images(paths: Sequence[Path]) -> list[Path]:
    """Files as given, and the image files (by suffix) found under directories, each directory sorted."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            files.append(path)
    return files


def load_classifier(model_dir: Path, *, backbones: Sequence[str] = (), trust_saved_model: bool = False) -> Classifier:
    """The classifier of a folder :func:`resolve_model_dir` returned.

    A hubpipe model folder is rebuilt (see the module's docstring); ``backbones`` are the configuration's
    (``train.backbones``), the handles besides the presets that its backbone may be loaded from. Any other
    SavedModel is loaded only with ``trust_saved_model``; otherwise UsageError says what loading it means.
    """
    tf = import_tensorflow()
    if (model_dir / MODEL_FILE).is_file():
        return _rebuilt_classifier(tf, model_dir, backbones)
    if not trust_saved_model:
        raise UsageError(
            f"{model_dir} is a SavedModel that hubpipe did not write (no {MODEL_FILE}): predicting with it runs "
            f"its graph, whose operations can read and write files as you; pass {TRUST_FLAG} only if you trust "
            "whoever wrote it"
        )
    LOG.warning("running the graph of the SavedModel %s (%s)", model_dir, TRUST_FLAG)
    return _saved_model_classifier(tf, model_dir)


def _saved_model_classifier(tf: Any, folder: Path) -> Classifier:
    """A SavedModel's own serving signature (images -> probabilities, classes), run as it is."""
    try:
        serve = tf.saved_model.load(str(folder)).signatures["serving_default"]
    except (KeyError, ValueError, OSError, tf.errors.OpError) as exc:
        raise UsageError(f"cannot load the SavedModel {folder}: {str(exc).splitlines()[0][:200]}") from None

    def classify(encoded: Sequence[bytes]) -> tuple[np.ndarray, list[str]]:
        outputs = serve(**{SERVING_INPUT: tf.constant(list(encoded))})
        names = [name.decode("utf-8") for name in outputs[CLASSES].numpy()[0]]
        return outputs[PROBABILITIES].numpy(), names

    return Classifier(classify)


def _class_names(folder: Path) -> list[str]:
    try:
        names = [line for line in (folder / LABELS_FILE).read_text(encoding="utf-8").split("\n") if line]
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the class names of {folder} ({LABELS_FILE}): {exc}") from None
    if not names:
        raise UsageError(f"{folder / LABELS_FILE} lists no class")
    return names


def _rebuilt_classifier(tf: Any, folder: Path, backbones: Sequence[str]) -> Classifier:
    """The model of a hubpipe model folder, rebuilt by hubpipe's code with only its weights read."""
    info = read_json_checked(folder / MODEL_FILE, {"backbone": dict, "hparams": dict})
    names, size = _class_names(folder), info.get("input_size")
    if not isinstance(size, int) or size <= 0:
        raise UsageError(f"{folder / MODEL_FILE} names no input size")
    try:
        model = _rebuilt_model(tf, folder, info, len(names), backbones)
    except (ValueError, OSError, tf.errors.OpError) as exc:
        raise UsageError(f"cannot rebuild the model in {folder}: {str(exc).splitlines()[0][:300]}") from None
    if int(model.output_shape[-1]) != len(names):
        raise UsageError(f"the model in {folder} has {model.output_shape[-1]} outputs for {len(names)} classes")
    LOG.debug("%s: %s model rebuilt by hubpipe's code from its weights", folder, info.get("mode"))
    return Classifier(_image_function(tf, model, size, names))


def _rebuilt_model(
    tf: Any, folder: Path, info: dict[str, Any], num_classes: int, backbones: Sequence[str], *, tune_layers: int = 0
) -> Any:
    """Images in [0, 1] -> probabilities, by the architecture model.json's ``mode`` names (see the docstring);
    ``tune_layers`` > 0 makes the top layers of a feature-extraction model's backbone trainable."""
    mode = info.get("mode")
    if mode == FROM_SCRATCH:
        scratch = models.build_scratch_cnn(tf, int(info["input_size"]), num_classes)
        return restore_classifier_weights(tf, scratch, folder / SERVING_DIR)
    if mode not in (FEATURE_EXTRACTION, FINE_TUNED):
        raise UsageError(f"{folder / MODEL_FILE}: unknown model mode {str(mode)[:40]!r}")
    spec = trusted_backbone(folder, info, backbones)
    backbone = load_feature_extractor(spec, trainable=False)
    if mode == FEATURE_EXTRACTION:
        if tune_layers > 0:
            backbone = models.tunable_backbone(tf, backbone, tune_layers)
        features = models.feature_model(tf, backbone, spec.input_size, spec.input_range)
        return models.image_classifier(tf, features, head_from_weights(tf, str(folder / HEAD_DIR)))
    tuned = models.tunable_backbone(tf, backbone, int(info.get("hparams", {}).get("fine_tune_layers", 0)))
    features = models.feature_model(tf, tuned, spec.input_size, spec.input_range)
    head = build_head(tf, int(features.output_shape[-1]), num_classes)
    return restore_classifier_weights(tf, models.image_classifier(tf, features, head), folder / SERVING_DIR)


def keras_model(
    model_dir: Path, *, backbones: Sequence[str] = (), fine_tune_layers: int = 0, learning_rate: float | None = None
) -> Any:
    """The model of a hubpipe model folder as a compiled tf_keras model (legacy Keras 2, what ``tf.keras`` is
    under hubpipe), rebuilt by hubpipe's code with only the weights read, as :func:`load_classifier` does.

    In: float32 ``[b, S, S, 3]`` images in [0, 1] (decoded as RGB, resized to S x S bilinear without a crop,
    divided by 255: :func:`~hubpipe.components.train.inputs.decode_and_resize`); out: class probabilities, in
    the order of the folder's labels.txt. The head trains; the backbone stays frozen unless
    ``fine_tune_layers`` > 0 (a feature-extraction model: its top layers train, BatchNorm stays frozen, as
    ``train.fine_tune_layers`` does). Compiled with Adam at ``learning_rate`` (default: the rate the model was
    trained at, or ``train.fine_tune_learning_rate``'s default when fine-tuning), sparse categorical
    cross-entropy and accuracy, so ``fit`` works at once.
    """
    tf = import_tensorflow()
    folder = Path(model_dir)
    if not (folder / MODEL_FILE).is_file():
        raise UsageError(f"{folder} is not a hubpipe model folder (no {MODEL_FILE})")
    info = read_json_checked(folder / MODEL_FILE, {"backbone": dict, "hparams": dict})
    names = _class_names(folder)
    try:
        model = _rebuilt_model(tf, folder, info, len(names), backbones, tune_layers=fine_tune_layers)
    except (ValueError, OSError, tf.errors.OpError) as exc:
        raise UsageError(f"cannot rebuild the model in {folder}: {str(exc).splitlines()[0][:300]}") from None
    if learning_rate is None:
        trained_at = float(info["hparams"].get("learning_rate") or TrainConfig.learning_rate)
        learning_rate = TrainConfig.fine_tune_learning_rate if fine_tune_layers > 0 else trained_at
    models.compile_classifier(tf, model, learning_rate)
    return model


def _image_function(
    tf: Any, model: Any, size: int, names: list[str]
) -> Callable[[Sequence[bytes]], tuple[np.ndarray, list[str]]]:
    """Encoded images -> (probabilities, class names): decoded and resized by hubpipe's code, then ``model``."""
    pixels_spec = tf.TensorSpec([size, size, 3], tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def probabilities(images: Any) -> Any:
        pixels = tf.map_fn(lambda image: decode_and_resize(tf, image, size), images, fn_output_signature=pixels_spec)
        return tf.cast(model(pixels, training=False), tf.float32)

    def classify(encoded: Sequence[bytes]) -> tuple[np.ndarray, list[str]]:
        return probabilities(tf.constant(list(encoded))).numpy(), names

    return classify


def trusted_backbone(folder: Path, info: dict[str, Any], configured: Sequence[str]) -> BackboneSpec:
    """The backbone a transfer model was trained on, as hubpipe's registry resolves it.

    Only model.json's backbone *name* is read: a preset is resolved by the registry; any other handle (a URL
    or a folder) is loaded only when the configuration names a backbone with the same fingerprint, so a
    model folder cannot make hubpipe load a SavedModel of its choosing as its backbone. The fingerprint and
    the input size must match what model.json recorded.
    """
    recorded = info.get("backbone") or {}
    name, wanted = str(recorded.get("name") or ""), info.get("backbone_fingerprint")
    presets = {spec.name for spec in list_backbones()}
    candidates = [resolve_backbone(name)] if name.lower().replace("-", "_") in presets else []
    candidates += [resolve_backbone(handle) for handle in configured]
    for spec in {spec.handle: spec for spec in candidates}.values():
        if spec.input_size == info.get("input_size") and backbone_fingerprint(spec) == wanted:
            return spec
    raise UsageError(
        f"{folder} was trained on the backbone {name[:200] or '?'} (fingerprint {str(wanted)[:80]}), which is no "
        "preset and which the configuration does not name: give it with --backbone HANDLE (train.backbones)"
    )


def prepared_image(tf: Any, data: bytes, limits: DataConfig) -> tuple[bytes | None, str | None]:
    """Encoded image bytes as the model takes them, converted as ingest converted the training images
    (:func:`~hubpipe.components.common.image_formats.model_input`: WebP, TIFF, AVIF, CMYK, 16-bit, alpha...),
    or why they are not classified (over ``data.max_file_bytes``, a header over ``data.max_pixels``, not
    decodable). The header is checked before anything is decoded."""
    if len(data) > limits.max_file_bytes:
        return None, _too_large(len(data), limits.max_file_bytes)
    try:
        if int(declared_pixels(tf, tf.constant(data))) > limits.max_pixels:
            return None, too_many_pixels_message(limits.max_pixels)
    except (tf.errors.InvalidArgumentError, ValueError):
        return None, UNREADABLE_IMAGE
    try:
        return model_input(data, limits.max_pixels), None
    except ImageRefused as exc:
        return None, str(exc)


def _read_image(tf: Any, path: Path, limits: DataConfig) -> tuple[bytes | None, str | None]:
    """The file's bytes if they are an image hubpipe classifies, else the reason they are not.

    A file over ``data.max_file_bytes`` is not read (at most one byte more than the limit ever is).
    """
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            return None, _too_large(size, limits.max_file_bytes)
        with open(path, "rb") as handle:
            data = handle.read(limits.max_file_bytes + 1)  # the file may have grown since
    except OSError as exc:
        return None, exc.strerror or str(exc)
    return prepared_image(tf, data, limits)


def _too_large(size: int, limit: int) -> str:
    return f"{size:,} bytes, over data.max_file_bytes ({limit:,}); the file is not read"


def classify_files(
    classifier: Classifier, files: Sequence[Path], top_k: int, limits: DataConfig, batch_size: int = 32
) -> Iterator[Prediction]:
    """The ``top_k`` classes of every file, in order; unreadable files yield a Prediction with ``error``."""
    tf = import_tensorflow()
    for start in range(0, len(files), batch_size):
        batch = files[start : start + batch_size]
        predictions: dict[int, Prediction] = {}
        readable: list[tuple[int, bytes]] = []
        for index, path in enumerate(batch):
            data, error = _read_image(tf, path, limits)
            if data is None:
                predictions[index] = Prediction(path, [], error)
            else:
                readable.append((index, data))
        if readable:
            tops = _top_classes(classifier, [data for _, data in readable], top_k)
            for (index, _), top in zip(readable, tops, strict=True):
                predictions[index] = Prediction(batch[index], top)
        yield from (predictions[index] for index in range(len(batch)))


def _top_classes(classifier: Classifier, encoded: Sequence[bytes], top_k: int) -> list[list[tuple[str, float]]]:
    """The ``top_k`` (class, probability) pairs of each encoded image."""
    probabilities, names = classifier.classify(encoded)
    return [[(names[i], float(row[i])) for i in row.argsort()[::-1][:top_k]] for row in probabilities]


def classify_encoded(
    classifier: Classifier, encoded: Sequence[bytes], top_k: int, limits: DataConfig, batch_size: int = 32
) -> list[list[tuple[str, float]]]:
    """The ``top_k`` classes of each encoded image (any format ingest takes, converted as ingest converts it);
    DataError names the first image that :func:`prepared_image` refuses."""
    tf = import_tensorflow()
    prepared = []
    for position, data in enumerate(encoded):
        converted, problem = prepared_image(tf, data, limits)
        if converted is None:
            raise DataError(f"image #{position}: {problem}")
        prepared.append(converted)
    encoded = prepared
    tops: list[list[tuple[str, float]]] = []
    for start in range(0, len(encoded), batch_size):
        tops.extend(_top_classes(classifier, encoded[start : start + batch_size], top_k))
    return tops
