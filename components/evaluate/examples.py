"""Reading the test split's images (encoded bytes) from the ingest stage's examples, batch by batch."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from hubpipe.components.common import features
from hubpipe.pipeline.core.errors import DataError

BATCH_SIZE = 32
_USED = (features.IMAGE, features.ID, features.LABEL)


@dataclass(frozen=True)
class ImageBatch:
    ids: list[str]
    labels: list[int]
    images: list[bytes]  # encoded image files (JPEG, PNG, GIF or BMP)


def test_batches(ingest_dir: Path, batch_size: int = BATCH_SIZE) -> Iterator[ImageBatch]:
    """The test split's examples in file order, ``batch_size`` at a time."""
    from hubpipe.pipeline.core.runtime import import_tensorflow

    tf = import_tensorflow()
    files = features.example_files(ingest_dir, "test")
    if not files:
        raise DataError(f"no test examples under {Path(ingest_dir) / features.EXAMPLES_DIR}")
    spec = {name: value for name, value in features.feature_spec().items() if name in _USED}
    dataset = tf.data.TFRecordDataset([str(path) for path in files]).batch(batch_size)
    for records in dataset:
        parsed = tf.io.parse_example(records, spec)
        yield ImageBatch(
            ids=[value.decode("utf-8") for value in parsed[features.ID].numpy()],
            labels=[int(value) for value in parsed[features.LABEL].numpy()],
            images=list(parsed[features.IMAGE].numpy()),
        )


def images_by_id(ingest_dir: Path, wanted: Collection[str]) -> dict[str, bytes]:
    """The encoded test images of the ``wanted`` ids (only those are kept in memory)."""
    wanted = set(wanted)
    found: dict[str, bytes] = {}
    if not wanted:
        return found
    for batch in test_batches(ingest_dir, batch_size=256):
        for example_id, image in zip(batch.ids, batch.images, strict=True):
            if example_id in wanted:
                found[example_id] = image
        if len(found) == len(wanted):
            break
    return found
