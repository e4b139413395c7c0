"""The examples that flow between stages: feature names, TFRecord layout and labels, in one place.

The ingest stage writes ``examples/<split>-NNNNN-of-MMMMM.tfrecord`` files of ``tf.train.Example`` and a
``labels.txt`` (one class name per line; the line number is the integer label). Every other stage reads them
through the functions here. TensorFlow is imported inside the functions that need it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

IMAGE = "image/encoded"  # the image file's bytes (original, or transcoded to PNG/JPEG when TF cannot decode it)
FORMAT = "image/format"  # "jpeg", "png", "gif" or "bmp"
HEIGHT = "image/height"
WIDTH = "image/width"
TRANSCODED = "image/transcoded"  # 1 when the bytes were re-encoded at ingest (CMYK JPEG, 16-bit PNG, ...)
SHA256 = "image/sha256"  # hex digest of the original file's bytes
LABEL = "label"  # integer class index into labels.txt
LABEL_TEXT = "label/text"  # the class name as found in the source (unsanitised)
ID = "id"  # stable example id, unique in a dataset
SPLIT = "split"  # "train" or "test"
SOURCE_PATH = "source/path"  # path of the file relative to the data root

SPLITS = ("train", "test")
EXAMPLES_DIR = "examples"
LABELS_FILE = "labels.txt"
TFRECORD_SUFFIX = ".tfrecord"

BYTES_FEATURES = (IMAGE, FORMAT, SHA256, LABEL_TEXT, ID, SPLIT, SOURCE_PATH)
INT_FEATURES = (HEIGHT, WIDTH, TRANSCODED, LABEL)


def make_example(values: dict[str, Any]) -> bytes:
    """A serialised ``tf.train.Example`` from a dict holding every feature above (str or bytes, int)."""
    from hubpipe.pipeline.core.runtime import import_tensorflow

    tf = import_tensorflow()
    missing = set(BYTES_FEATURES + INT_FEATURES) - set(values)
    if missing:
        raise ValueError(f"example misses features: {', '.join(sorted(missing))}")
    feature = {}
    for name in BYTES_FEATURES:
        value = values[name]
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[raw]))
    for name in INT_FEATURES:
        feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(values[name])]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def feature_spec() -> dict[str, Any]:
    """The parsing spec for ``tf.io.parse_example``."""
    from hubpipe.pipeline.core.runtime import import_tensorflow

    tf = import_tensorflow()
    spec = {name: tf.io.FixedLenFeature([], tf.string) for name in BYTES_FEATURES}
    spec.update({name: tf.io.FixedLenFeature([], tf.int64) for name in INT_FEATURES})
    return spec


def example_files(examples_root: Path, split: str) -> list[Path]:
    """The TFRecord files of ``split`` under an ingest artifact folder, sorted."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}")
    return sorted((Path(examples_root) / EXAMPLES_DIR).glob(f"{split}-*{TFRECORD_SUFFIX}"))


def read_labels(examples_root: Path) -> list[str]:
    """Class names in label order, from ``labels.txt`` of an ingest artifact folder."""
    text = (Path(examples_root) / LABELS_FILE).read_text(encoding="utf-8")
    return [line for line in text.split("\n") if line]


def read_class_names(examples_root: Path) -> list[str]:
    """Class names in label order for training or scoring; DataError when labels.txt is unreadable or has < 2."""
    from hubpipe.pipeline.core.errors import DataError

    try:
        names = read_labels(examples_root)
    except OSError as exc:
        raise DataError(f"cannot read {LABELS_FILE} under {examples_root}: {exc.strerror or exc}") from None
    if len(names) < 2:
        raise DataError(f"{LABELS_FILE} under {examples_root} names {len(names)} class(es); need at least 2")
    return names


def write_labels(examples_root: Path, labels: list[str]) -> None:
    from hubpipe.pipeline.core.artifacts import write_text_atomic

    write_text_atomic(Path(examples_root) / LABELS_FILE, "".join(f"{label}\n" for label in labels))
