"""A split's examples joined to the vector store by content key: what training and evaluation read vectors by.

The join keeps the split's example order (the order of its TFRecord files and of the records in them), holds
per example only its content key, label and where its vector is (about 50 bytes), and reads the vectors
from the store's shards as they are needed, a chunk at a time: the whole ``[n, d]`` array is never in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hubpipe.components.common import features
from hubpipe.components.common.vector_store import (
    KEY_BYTES,
    StoreIndex,
    VectorReader,
    content_key,
    open_index,
    store_space_dir,
)

#: Examples parsed, and vectors read, per step.
CHUNK = 1024


@dataclass(frozen=True)
class SplitKeys:
    """A split's examples in file order: content keys (``S32``), labels and (when asked) example ids."""

    keys: np.ndarray
    labels: np.ndarray
    ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.keys)


def read_split_keys(tf: Any, files: list[Path], with_ids: bool = False) -> SplitKeys:
    """The content keys and labels (and ids) of the examples in ``files``, in order; no image is decoded."""
    wanted = (features.SHA256, features.TRANSCODED, features.LABEL, features.ID, features.IMAGE)
    spec = {name: value for name, value in features.feature_spec().items() if name in wanted}
    keys: list[bytes] = []
    labels: list[np.ndarray] = []
    ids: list[str] = []
    dataset = tf.data.TFRecordDataset([str(path) for path in files]).batch(CHUNK)
    for records in dataset:
        parsed = {name: value.numpy() for name, value in tf.io.parse_example(records, spec).items()}
        for digest, transcoded, image in zip(
            parsed[features.SHA256], parsed[features.TRANSCODED], parsed[features.IMAGE], strict=True
        ):
            keys.append(content_key(digest, bool(transcoded), image))
        labels.append(parsed[features.LABEL].astype(np.int64))
        if with_ids:
            ids.extend(value.decode("utf-8") for value in parsed[features.ID])
    return SplitKeys(
        np.array(keys, dtype=f"S{KEY_BYTES}"),
        np.concatenate(labels) if labels else np.zeros(0, np.int64),
        np.array(ids) if with_ids else None,
    )


@dataclass
class JoinedSplit:
    """A split whose every example has a vector in the store: where each one is, in example order."""

    index: StoreIndex
    keys: np.ndarray
    labels: np.ndarray
    ids: np.ndarray | None
    shard: np.ndarray
    row: np.ndarray

    @property
    def dimension(self) -> int:
        return int(self.index.dimension or 0)

    def __len__(self) -> int:
        return len(self.keys)

    def chunks(self, chunk: int = CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(vectors [k, d] float32, labels [k])`` in example order, ``chunk`` examples at a time."""
        reader = VectorReader(self.index)
        try:
            for start in range(0, len(self.keys), chunk):
                end = start + chunk
                vectors = reader.read(self.shard[start:end], self.row[start:end], self.keys[start:end])
                yield vectors, self.labels[start:end]
        finally:
            reader.close()

    def vectors(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The vectors of ``rows`` (all when None) as one array; for small selections (the projector)."""
        picked = np.arange(len(self.keys)) if rows is None else np.asarray(rows, np.int64)
        reader = VectorReader(self.index)
        try:
            return reader.read(self.shard[picked], self.row[picked], self.keys[picked])
        finally:
            reader.close()


def join_split(index: StoreIndex, split: SplitKeys) -> JoinedSplit:
    """Joins a split to the store; raises KeyError (the first missing key, hex) when a vector is missing."""
    shard, row = index.locate(split.keys)
    return JoinedSplit(index, split.keys, split.labels, split.ids, shard, row)


def line_up(row_ids: Sequence[str], ids: Sequence[str]) -> np.ndarray | None:
    """The row indices that put rows keyed by ``row_ids`` in the order of ``ids``; None when an id has no row."""
    rows = {example_id: row for row, example_id in enumerate(row_ids)}
    if any(example_id not in rows for example_id in ids):
        return None
    return np.array([rows[example_id] for example_id in ids], dtype=np.int64)


def stored_test_split(tf: Any, store: str, space_id: str, ingest_dir: Path, ids: Sequence[str]) -> JoinedSplit | None:
    """The test split's stored vectors of a vector space, rows in the order of ``ids``; None when the split
    does not hold every id or a vector is not in the store."""
    split = read_split_keys(tf, features.example_files(ingest_dir, "test"), with_ids=True)
    assert split.ids is not None
    order = line_up(split.ids, ids)
    if order is None:
        return None
    index = open_index(store_space_dir(store, space_id))
    try:
        return join_split(index, SplitKeys(split.keys[order], split.labels[order], split.ids[order]))
    except KeyError:
        return None
