"""The feature-vector cache the train stage fills and the evaluate stage reads: one split's vectors per key.

Layout under a cache folder (the train stage's ``ctx.cache_dir``)::

    embeddings/<key>/<split>/features.npy   float32 [n, d], in the split's file order
    embeddings/<key>/<split>/examples.npz   ids (str) and labels (int64), aligned with the rows
    embeddings/<key>/<split>/meta.json      what the vectors are (backbone, input size, count, dimension)

The train stage decides the ``key`` (see ``hubpipe.components.train.embeddings.embedding_key``) and records it
in each model's ``model.json``. A split folder is written under a temporary name and swapped into place, so a
killed extraction leaves nothing a reader would trust. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hubpipe.pipeline.artifacts import replace_dir, staging_dir, write_json_atomic


@dataclass(frozen=True)
class Embeddings:
    """One split's feature vectors with the ids and labels of their examples (rows aligned)."""

    features: np.ndarray  # float32 [n, d]
    labels: np.ndarray  # int64 [n]
    ids: np.ndarray  # str [n]


#: The cache folder, and the three files of one split's folder below it.
EMBEDDINGS_DIR = "embeddings"
FEATURES_FILE = "features.npy"
EXAMPLES_FILE = "examples.npz"
META_FILE = "meta.json"


def split_dir(cache_dir: Path, key: str, split: str) -> Path:
    return Path(cache_dir) / EMBEDDINGS_DIR / key / split


def load_embeddings(cache_dir: Path, key: str, split: str) -> Embeddings | None:
    """The cached vectors of ``split`` under ``key``, or None when they are not (completely) there."""
    folder = split_dir(cache_dir, key, split)
    try:
        vectors = np.load(folder / FEATURES_FILE)
        with np.load(folder / EXAMPLES_FILE) as examples:
            labels, ids = examples["labels"], examples["ids"]
    except (OSError, ValueError, KeyError):
        return None
    if len(vectors) != len(labels) or len(ids) != len(labels):
        return None
    return Embeddings(vectors.astype(np.float32, copy=False), labels.astype(np.int64), ids.astype(str))


def vectors_in_order(cache_dir: Path, key: str, split: str, ids: Sequence[str]) -> np.ndarray | None:
    """The cached vectors of ``split`` lined up with ``ids``; None when not cached or an id has no vector."""
    embeddings = load_embeddings(cache_dir, key, split)
    if embeddings is None:
        return None
    order = line_up(embeddings.ids, ids)
    return None if order is None else embeddings.features[order]


def line_up(row_ids: Sequence[str], ids: Sequence[str]) -> np.ndarray | None:
    """The row indices that put rows keyed by ``row_ids`` in the order of ``ids``; None when an id has no row."""
    rows = {example_id: row for row, example_id in enumerate(row_ids)}
    if any(example_id not in rows for example_id in ids):
        return None
    return np.array([rows[example_id] for example_id in ids], dtype=np.int64)


def save_embeddings(folder: Path, embeddings: Embeddings, meta: dict[str, Any]) -> None:
    """Writes a split's files into a temporary sibling folder, then swaps it in as ``folder``.

    An unreadable leftover at ``folder`` (load_embeddings returned None for it) is replaced; so are the same
    vectors written by a process racing this one.
    """
    tmp = staging_dir(folder)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / FEATURES_FILE, embeddings.features)
    np.savez(tmp / EXAMPLES_FILE, labels=embeddings.labels, ids=embeddings.ids)
    write_json_atomic(tmp / META_FILE, meta)
    try:
        replace_dir(tmp, folder)
    except OSError:  # a racing process put its folder in place between our two renames
        shutil.rmtree(tmp, ignore_errors=True)
