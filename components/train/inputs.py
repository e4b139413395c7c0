"""Reading the ingest stage's examples for training: parsing, decoding, resizing, and what identifies a split.

Every model sees images prepared the same way: decoded (JPEG, PNG, GIF or BMP; the first frame of an
animation), resized to a square with bilinear interpolation and no crop (as Keras'
``image_dataset_from_directory`` does), as float32 in [0, 1]. The serving model repeats exactly this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hubpipe.components.common import features
from hubpipe.pipeline.core.artifacts import hash_files
from hubpipe.pipeline.core.errors import DataError

#: How images are resized; part of the embedding cache key.
RESIZE_METHOD = "bilinear"
#: Examples decoded in parallel and batches prefetched: tf.data.AUTOTUNE.
AUTOTUNE = -1
_USED_FEATURES = (features.IMAGE, features.LABEL, features.ID)


@dataclass(frozen=True)
class SplitData:
    """One split of the ingested examples: its TFRecord files and what identifies their content."""

    name: str
    files: tuple[Path, ...]
    fingerprint: str


def load_split(ingest_dir: Path, split: str) -> SplitData:
    """The split's files under an ingest artifact folder; raises DataError when it has none."""
    files = tuple(features.example_files(ingest_dir, split))
    if not files:
        raise DataError(f"no {split} examples under {ingest_dir}/{features.EXAMPLES_DIR}; run the ingest stage first")
    return SplitData(split, files, hash_files(files, Path(ingest_dir)))


def decode_and_resize(tf: Any, encoded: Any, size: int) -> Any:
    """Encoded image bytes (a scalar string tensor) -> float32 ``[size, size, 3]`` in [0, 1]."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image = tf.image.resize(image, [size, size], method=RESIZE_METHOD)
    return tf.clip_by_value(image / 255.0, 0.0, 1.0)


def parse_records(tf: Any, split: SplitData, names: tuple[str, ...] = _USED_FEATURES) -> Any:
    """A dataset of parsed examples (dicts of the ``names`` features, scalar tensors), in file order."""
    spec = {name: feature for name, feature in features.feature_spec().items() if name in names}
    records = tf.data.TFRecordDataset([str(path) for path in split.files]).with_options(_static_parallelism(tf))
    return records.map(lambda record: tf.io.parse_single_example(record, spec), num_parallel_calls=AUTOTUNE)


def _static_parallelism(tf: Any) -> Any:
    """tf.data options without the autotuner: parallel maps use one thread per core.

    On a few cores the autotuner's extra threads compete with the backbone's: feature extraction ran at 73
    img/s in about half of the processes measured here, against 100-120 img/s with autotuning off.
    """
    from hubpipe.components.train.threads import usable_cores

    options = tf.data.Options()
    options.autotune.enabled = False
    options.threading.private_threadpool_size = usable_cores()  # not the host's core count (see .threads)
    return options


def image_dataset(tf: Any, split: SplitData, size: int, with_ids: bool = False) -> Any:
    """``(image, label)`` pairs, or ``(image, label, id)`` with ``with_ids``, decoded in parallel, in file order."""

    def prepare(example: dict[str, Any]) -> tuple[Any, ...]:
        image = decode_and_resize(tf, example[features.IMAGE], size)
        if with_ids:
            return image, example[features.LABEL], example[features.ID]
        return image, example[features.LABEL]

    return parse_records(tf, split).map(prepare, num_parallel_calls=AUTOTUNE)


def class_counts(labels: Sequence[int] | np.ndarray, class_names: list[str]) -> dict[str, int]:
    """Examples per class name (0 for a class without examples); raises DataError for an unknown label."""
    values, numbers = np.unique(np.asarray(labels, np.int64), return_counts=True)
    counts = dict(zip(values.tolist(), numbers.tolist(), strict=True))
    unknown = sorted(set(counts) - set(range(len(class_names))))
    if unknown:
        raise DataError(f"examples carry label {unknown[0]}, but labels.txt names only {len(class_names)} classes")
    return {name: counts.get(index, 0) for index, name in enumerate(class_names)}
