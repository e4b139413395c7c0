"""The feature-vector cache the train stage fills and the evaluate stage reads: one split's vectors per key.

Layout under a cache folder (the train stage's ``ctx.cache_dir``)::

    embeddings/<key>/<split>/features.npy   float32 [n, d], in the split's file order
    embeddings/<key>/<split>/examples.npz   ids (str) and labels (int64), aligned with the rows
    embeddings/<key>/<split>/meta.json      what the vectors are (backbone, input size, count, dimension) and
                                            the SHA-256 of the two files above (``sha256``: name -> digest)

The train stage decides the ``key`` (see ``hubpipe.components.train.embeddings.embedding_key``) and records it
in each model's ``model.json``. A split folder is written under a temporary name (each file fsynced) and
swapped into place, so a killed extraction leaves nothing a reader would trust; a reader uses a split only
when both files match the digests recorded at write (see :mod:`.checked_files`), so same-size garbage in a
cached file is found, logged once as "damaged or incomplete", and not used. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hubpipe.components.common.checked_files import digest_problem, write_durably
from hubpipe.pipeline.core.artifacts import read_json, replace_dir, staging_dir, write_json_atomic

LOG = logging.getLogger(__name__)


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
SPLIT_FILES = (FEATURES_FILE, EXAMPLES_FILE)
META_FILE = "meta.json"
#: The entry of meta.json that holds the digests of the split's files.
DIGESTS = "sha256"


def split_dir(cache_dir: Path, key: str, split: str) -> Path:
    return Path(cache_dir) / EMBEDDINGS_DIR / key / split


def load_embeddings(cache_dir: Path, key: str, split: str) -> Embeddings | None:
    """The cached vectors of ``split`` under ``key``, or None when they are not there or not intact (a split
    folder that is there but fails its check is logged once as damaged or incomplete)."""
    folder = split_dir(cache_dir, key, split)
    if not folder.is_dir():
        return None
    problem = _files_problem(folder)
    if not problem:
        try:
            vectors = np.load(folder / FEATURES_FILE)
            with np.load(folder / EXAMPLES_FILE) as examples:
                labels, ids = examples["labels"], examples["ids"]
        except (OSError, ValueError, KeyError) as exc:
            problem = f"unreadable: {exc}"
        else:
            if len(vectors) == len(labels) == len(ids):
                return Embeddings(vectors.astype(np.float32, copy=False), labels.astype(np.int64), ids.astype(str))
            problem = f"{len(vectors)} vectors for {len(labels)} labels and {len(ids)} ids"
    LOG.info("the cached feature vectors in %s are damaged or incomplete (%s): not used", folder, problem)
    return None


def _files_problem(folder: Path) -> str:
    """What is wrong with the split folder's files against the digests its meta.json records ('' if nothing)."""
    try:
        meta = read_json(folder / META_FILE)
    except (OSError, ValueError) as exc:
        return f"unreadable {META_FILE}: {exc}"
    digests = meta.get(DIGESTS) if isinstance(meta, dict) else None
    if not isinstance(digests, dict):
        return f"no digests recorded in {META_FILE}"
    for name in SPLIT_FILES:
        problem = digest_problem(folder / name, digests.get(name))
        if problem:
            return problem
    return ""


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
    """Writes a split's files (fsynced) and ``meta`` with their digests into a temporary sibling folder, then
    swaps it in as ``folder``.

    A damaged leftover at ``folder`` (load_embeddings returned None for it) is replaced; so are the same
    vectors written by a process racing this one.
    """
    tmp = staging_dir(folder)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    digests = {
        FEATURES_FILE: write_durably(tmp / FEATURES_FILE, lambda handle: np.save(handle, embeddings.features)),
        EXAMPLES_FILE: write_durably(
            tmp / EXAMPLES_FILE, lambda handle: np.savez(handle, labels=embeddings.labels, ids=embeddings.ids)
        ),
    }
    write_json_atomic(tmp / META_FILE, {**meta, DIGESTS: digests})
    try:
        replace_dir(tmp, folder)
    except OSError:  # a racing process put its folder in place between our two renames
        shutil.rmtree(tmp, ignore_errors=True)
