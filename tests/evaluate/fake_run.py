"""A tiny, fully controlled run for the evaluate and publish tests: ingest and train artifacts built by hand.

Three classes of solid-colour test images (red, green, blue); one image per class is painted in the next
class's colour, so it is "hard". A transfer model's "backbone" is the mean colour of the image (3 numbers) and
its head is one Dense softmax layer over it, so the serving SavedModel (encoded images in), the head (vectors
in), the stored test vectors and the recorded test predictions all agree, as they do for real models.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from hubpipe.components.common import features, vector_store
from hubpipe.components.train.summaries import write_experiment, write_model_logs
from hubpipe.pipeline.core.runtime import import_tensorflow

CLASSES = ["red", "green", "blue"]
COLOURS = [(230, 20, 20), (20, 230, 20), (20, 20, 230)]
PER_CLASS = 6
BACKBONE_FINGERPRINT = "mean-colour-v1"
VECTOR_SPACE = "fake-mean-colour-space"
#: Head weights: features (r, g, b) -> logits per class.
GOOD_HEAD = 12.0 * np.eye(3, dtype=np.float32)
WEAK_HEAD = 12.0 * np.roll(np.eye(3, dtype=np.float32), 1, axis=1)  # predicts the next class
#: Right on red and green, blue taken for green: lower than GOOD_HEAD, still well above chance.
FAIR_HEAD = 12.0 * np.array([[1, 0, 0], [0, 1, 0], [0, 1.2, 0]], dtype=np.float32)


@dataclass(frozen=True)
class FakeImage:
    id: str
    label: int
    encoded: bytes


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (12, 10), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def make_test_images() -> list[FakeImage]:
    images = []
    for label in range(len(CLASSES)):
        for index in range(PER_CLASS):
            painted = (label + 1) % len(CLASSES) if index == 0 else label  # the first of each class is hard
            images.append(FakeImage(f"test/{CLASSES[label]}/{index}.png", label, _png(COLOURS[painted])))
    return images


def write_ingest(folder: Path) -> list[FakeImage]:
    """An ingest artifact folder: labels.txt and one TFRecord file per split."""
    images = make_test_images()
    (folder / features.EXAMPLES_DIR).mkdir(parents=True)
    features.write_labels(folder, CLASSES)
    tf = import_tensorflow()
    for split in features.SPLITS:
        path = folder / features.EXAMPLES_DIR / f"{split}-00000-of-00001{features.TFRECORD_SUFFIX}"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for image in images:
                writer.write(
                    features.make_example(
                        {
                            features.IMAGE: image.encoded,
                            features.FORMAT: "png",
                            features.HEIGHT: 10,
                            features.WIDTH: 12,
                            features.TRANSCODED: 0,
                            features.SHA256: hashlib.sha256(image.encoded).hexdigest(),
                            features.LABEL: image.label,
                            features.LABEL_TEXT: CLASSES[image.label],
                            features.ID: image.id if split == "test" else image.id.replace("test/", "train/"),
                            features.SPLIT: split,
                            features.SOURCE_PATH: image.id,
                        }
                    )
                )
    return images


def mean_colours(tf, encoded: list[bytes]) -> np.ndarray:
    pixels = [tf.cast(tf.io.decode_image(data, channels=3, expand_animations=False), tf.float32) for data in encoded]
    return np.stack([tf.reduce_mean(p / 255.0, axis=[0, 1]).numpy() for p in pixels]).astype(np.float32)


def write_vectors(store: Path, images: list[FakeImage], space: str = VECTOR_SPACE) -> None:
    """The test images' vectors in a vector store, keyed by content as the train stage stores them."""
    tf = import_tensorflow()
    keys = [hashlib.sha256(image.encoded).digest() for image in images]
    vectors = mean_colours(tf, [i.encoded for i in images])
    vector_store.write_shard(vector_store.store_space_dir(str(store), space), keys, vectors)


def _head(tf, weights: np.ndarray):
    inputs = tf.keras.Input(shape=(3,), name="features")
    layer = tf.keras.layers.Dense(3, activation="softmax", name="probabilities")
    model = tf.keras.Model(inputs, layer(inputs))
    layer.set_weights([weights, -4.0 * np.ones(3, np.float32)])
    # Compiled and evaluated like the train stage's heads, so that the saved head holds metric counters too.
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.evaluate(np.zeros((1, 3), np.float32), np.zeros((1,), np.int64), verbose=0)
    return model


def _save_serving(tf, head, path: Path) -> None:
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve(images):
        def mean_colour(data):
            image = tf.cast(tf.io.decode_image(data, channels=3, expand_animations=False), tf.float32)
            return tf.reduce_mean(image / 255.0, axis=[0, 1])

        vectors = tf.map_fn(mean_colour, images, fn_output_signature=tf.TensorSpec([3], tf.float32))
        return {"probabilities": head(vectors)}

    module = tf.Module()
    module.head = head
    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})


def _history(accuracy: float) -> list[dict[str, float]]:
    return [
        {"epoch": epoch, "loss": 1.0 / (epoch + 1), "accuracy": accuracy, "val_loss": 1.0, "val_accuracy": accuracy}
        for epoch in range(2)
    ]


def _finish_model(tf, train_dir: Path, name: str, *, info: dict, probabilities: np.ndarray, images) -> None:
    folder = train_dir / "models" / name
    labels = np.array([i.label for i in images])
    accuracy = float(np.mean(probabilities.argmax(axis=1) == labels))
    np.savez(
        folder / "test_predictions.npz",
        ids=np.array([i.id for i in images]),
        labels=labels,
        probabilities=probabilities.astype(np.float32),
    )
    features.write_labels(folder, CLASSES)
    (folder / "model.json").write_text(json.dumps({**info, "name": name, "test_accuracy": accuracy}))
    hparams = {
        "model": name,
        "backbone": info.get("backbone_name", "none"),
        "mode": info["mode"],
        "learning_rate": 0.001,
        "epochs": 2,
        "batch_size": 8,
        "train_images_per_class": PER_CLASS,
        "augment": False,
    }
    write_model_logs(tf, train_dir / "logs" / name, _history(accuracy), hparams)


def write_transfer_model(train_dir: Path, name: str, weights: np.ndarray, images: list[FakeImage]) -> None:
    """A feature-extraction model: serving/, head/, labels, model.json, predictions, logs."""
    tf = import_tensorflow()
    folder = train_dir / "models" / name
    folder.mkdir(parents=True)
    head = _head(tf, weights)
    head.save(str(folder / "head"), include_optimizer=False, save_format="tf")
    _save_serving(tf, head, folder / "serving")
    probabilities = head.predict(mean_colours(tf, [i.encoded for i in images]), verbose=0)
    info = {
        "kind": "transfer",
        "mode": "feature_extraction",
        "backbone": {"name": "mean_colour"},
        "backbone_name": "mean_colour",
        "backbone_fingerprint": BACKBONE_FINGERPRINT,
        "vector_space": VECTOR_SPACE,
        "input_size": 8,
        "files": {"serving": "serving", "head": "head", "labels": "labels.txt"},
    }
    _finish_model(tf, train_dir, name, info=info, probabilities=probabilities, images=images)


def write_scratch_model(train_dir: Path, images: list[FakeImage]) -> None:
    """The from-scratch baseline: right on red only (accuracy about 1/3)."""
    tf = import_tensorflow()
    (train_dir / "models" / "scratch_cnn").mkdir(parents=True)
    probabilities = np.tile(np.array([[0.6, 0.3, 0.1]], np.float32), (len(images), 1))
    info = {"kind": "scratch", "mode": "from_scratch", "backbone": None, "input_size": 8, "files": {}}
    _finish_model(tf, train_dir, "scratch_cnn", info=info, probabilities=probabilities, images=images)


def write_train(train_dir: Path, heads: dict[str, np.ndarray], images: list[FakeImage], baseline: bool = True) -> None:
    """A train artifact folder with the given transfer models (name -> head weights) and the baseline."""
    tf = import_tensorflow()
    for name, weights in heads.items():
        write_transfer_model(train_dir, name, weights, images)
    if baseline:
        write_scratch_model(train_dir, images)
    write_experiment(tf, train_dir / "logs")
    (train_dir / "summary.json").write_text(json.dumps({"models": sorted([*heads, "scratch_cnn"])}))


def copy_run(template: Path, destination: Path) -> Path:
    shutil.copytree(template, destination)
    return destination


@dataclass(frozen=True)
class FakeWorld:
    """Read-only upstream artifacts shared by the tests of a session."""

    ingest: Path
    cache: Path  # the vector store holding the test images' vectors
    images: list[FakeImage]
    train_good_and_weak: Path  # "good" (accuracy 5/6) and "weak" (0) candidates, and the baseline (1/3)
    train_fair: Path  # "fair" (accuracy 0.5): worse than "good" by more than the allowed drop
    train_better: Path  # "better": as accurate as "good", but another model
    train_without_baseline: Path  # "good" only, no scratch_cnn


_WORLD: list[FakeWorld] = []


def shared_world(make_root: Callable[[], Path]) -> FakeWorld:
    """The session's world, built on first use (the evaluate, publish and browser tests share it)."""
    if not _WORLD:
        _WORLD.append(build_world(make_root()))
    return _WORLD[0]


def build_world(root: Path) -> FakeWorld:
    images = write_ingest(root / "ingest")
    write_vectors(root / "vectors", images)
    runs = {
        "train_good_and_weak": ({"good": GOOD_HEAD, "weak": WEAK_HEAD}, True),
        "train_fair": ({"fair": FAIR_HEAD}, True),
        "train_better": ({"better": 1.5 * GOOD_HEAD}, True),
        "train_without_baseline": ({"good": GOOD_HEAD}, False),
    }
    for name, (heads, baseline) in runs.items():
        write_train(root / name, heads, images, baseline=baseline)
    return FakeWorld(root / "ingest", root / "vectors", images, *(root / name for name in runs))
