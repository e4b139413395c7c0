"""Tiny inputs for the train tests: an ingest-style example folder and a TF Hub-style backbone SavedModel.

Also imported by the subprocess that the resume test kills, so it holds plain functions, not fixtures.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from hubpipe.components.backbones.hub_format import feature_vector_root
from hubpipe.components.backbones.manifest import write_manifest
from hubpipe.components.common import features
from hubpipe.data.sample import render_jpeg
from hubpipe.pipeline.core.config import TrainConfig, replace
from hubpipe.pipeline.core.runtime import import_tensorflow

CLASSES = ("checkerboard", "rings", "stripes")
#: A dataset the tiny backbone's vectors separate (a head on them reaches well above chance): noisy colours.
COLOUR_CLASSES = ("red", "green", "blue")
COLOURS = ((220, 40, 40), (40, 200, 40), (40, 40, 220))
TRAIN_PER_CLASS = 6
TEST_PER_CLASS = 3
BACKBONE_SIZE = 32
BACKBONE_DIM = 16
SCRATCH_SIZE = 32


def _png(jpeg: bytes) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(buffer, format="PNG")
    return buffer.getvalue()


def example_images(split: str, per_class: int) -> list[tuple[str, int, str, bytes]]:
    """``(id, label, format, bytes)`` of a split; every third test image is a PNG."""
    images = []
    for label, name in enumerate(CLASSES):
        for index in range(per_class):
            data = render_jpeg(0, split, name, index)
            fmt = "jpeg"
            if split == "test" and index % 3 == 2:
                data, fmt = _png(data), "png"
            images.append((f"{split}/{name}/{index}", label, fmt, data))
    return images


def colour_images(split: str, per_class: int) -> list[tuple[str, int, str, bytes]]:
    """``(id, label, format, bytes)`` of a split of :data:`COLOUR_CLASSES`: each image its class's colour, darkened
    at random, with pixel noise (the same bytes every time)."""
    images = []
    for label, name in enumerate(COLOUR_CLASSES):
        for index in range(per_class):
            rng = np.random.default_rng([label, index, split == "test"])
            colour = np.array(COLOURS[label], np.float32) * rng.uniform(0.6, 1.0)
            pixels = np.clip(colour + rng.normal(0.0, 25.0, (24, 24, 3)), 0, 255).astype(np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="JPEG")
            images.append((f"{split}/{name}/{index}", label, "jpeg", buffer.getvalue()))
    return images


ImageSource = Callable[[str, int], list[tuple[str, int, str, bytes]]]


def write_ingest_dir(root: Path, images: ImageSource = example_images, classes: Sequence[str] = CLASSES) -> Path:
    """An ingest artifact folder: examples/<split>-00000-of-00001.tfrecord and labels.txt."""
    tf = import_tensorflow()
    (root / features.EXAMPLES_DIR).mkdir(parents=True)
    for split, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        path = root / features.EXAMPLES_DIR / f"{split}-00000-of-00001{features.TFRECORD_SUFFIX}"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for example_id, label, fmt, data in images(split, per_class):
                width, height = Image.open(io.BytesIO(data)).size
                values = {
                    features.IMAGE: data,
                    features.FORMAT: fmt,
                    features.HEIGHT: height,
                    features.WIDTH: width,
                    features.TRANSCODED: 0,
                    features.SHA256: hashlib.sha256(data).hexdigest(),
                    features.LABEL: label,
                    features.LABEL_TEXT: classes[label],
                    features.ID: example_id,
                    features.SPLIT: split,
                    features.SOURCE_PATH: f"{example_id}.{fmt}",
                }
                writer.write(features.make_example(values))
    features.write_labels(root, list(classes))
    return root


def write_tiny_backbone(path: Path) -> Path:
    """A small conv net saved like a TF Hub image feature vector (``__call__``, variables, manifest)."""
    tf = import_tensorflow()
    tf.keras.utils.set_random_seed(7)
    layers = tf.keras.layers
    images = layers.Input(shape=(None, None, 3), dtype="float32")
    x = layers.Conv2D(8, 3, strides=2, padding="same", name="conv1")(images)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU(name="relu1")(x)
    x = layers.Conv2D(BACKBONE_DIM, 3, strides=2, padding="same", name="conv2")(x)
    x = layers.BatchNormalization(name="bn2")(x)
    x = layers.ReLU(name="relu2")(x)
    model = tf.keras.Model(images, layers.GlobalAveragePooling2D(name="pool")(x))
    root = feature_vector_root(tf, model, tf.TensorSpec([None, None, None, 3], tf.float32))
    tf.saved_model.save(root, str(path))
    write_manifest(path, {"input_size": BACKBONE_SIZE, "output_dim": BACKBONE_DIM, "input_range": [0.0, 1.0]})
    return path


def tiny_train_config(backbone: Path, **changes: object) -> TrainConfig:
    """A fast training configuration over the tiny backbone."""
    base = TrainConfig(
        backbones=(str(backbone),),
        epochs=3,
        batch_size=8,
        learning_rate=0.01,
        baseline=True,
        baseline_epochs=2,
        precision="float32",
    )
    return replace(base, **changes)
