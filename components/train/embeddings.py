"""Feature extraction into the embedding cache: each example's feature vector, computed once per backbone and
preprocessing, and kept in the cache of :mod:`hubpipe.components.common.feature_vectors`.

``key`` hashes the backbone fingerprint, the preprocessing (input size, resize method, input range) and the
content of both splits' TFRecord files, so any change to one of them computes new vectors, and a rerun that
changes only training settings (epochs, learning rate) reuses them. The evaluate stage reuses the test vectors
with the ``embedding_key`` that ``model.json`` records.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hubpipe.components.common.feature_vectors import Embeddings, load_embeddings, save_embeddings, split_dir
from hubpipe.components.train.inputs import RESIZE_METHOD, SplitData, image_dataset
from hubpipe.pipeline.core.artifacts import stable_hash
from hubpipe.pipeline.core.progress import progress

LOG = logging.getLogger(__name__)

#: Bump when the cached files would change for the same key.
CACHE_VERSION = 1


@dataclass(frozen=True)
class Extraction:
    """How one split's embeddings were obtained."""

    embeddings: Embeddings
    cached: bool
    seconds: float
    recomputed: bool = False  # the cache held this split's vectors, damaged or incomplete: computed again


def embedding_key(
    backbone_fingerprint: str,
    input_size: int,
    input_range: tuple[float, float],
    split_fingerprints: Mapping[str, str],
) -> str:
    """The cache key of a backbone's vectors for a dataset, prepared in a given way."""
    return stable_hash(
        {
            "version": CACHE_VERSION,
            "backbone": backbone_fingerprint,
            "preprocessing": {"input_size": input_size, "resize": RESIZE_METHOD, "range": list(input_range)},
            "splits": dict(split_fingerprints),
        }
    )[:32]


def extract(
    tf: Any,
    feature_fn: Callable[[Any], Any],
    split: SplitData,
    input_size: int,
    batch_size: int,
    *,
    examples: int | None = None,
) -> Embeddings:
    """Runs ``feature_fn`` (images -> vectors) over a split, decoding in parallel and prefetching; ``examples``
    (the split's size, when known) gives the progress bar its total."""
    dataset = image_dataset(tf, split, input_size, with_ids=True).batch(batch_size).prefetch(2)
    vectors, labels, ids = [], [], []
    total = -(-examples // batch_size) if examples else None
    bar = progress(dataset, desc=f"features ({split.name})", total=total, unit="batch")
    for images, batch_labels, batch_ids in bar:
        vectors.append(np.asarray(feature_fn(images), dtype=np.float32))
        labels.append(batch_labels.numpy())
        ids.append(batch_ids.numpy())
    if not vectors:
        return Embeddings(np.zeros((0, 0), np.float32), np.zeros(0, np.int64), np.zeros(0, str))
    return Embeddings(
        np.concatenate(vectors),
        np.concatenate(labels).astype(np.int64),
        np.array([v.decode("utf-8") for v in np.concatenate(ids)]),
    )


def ensure_embeddings(
    tf: Any,
    feature_fn: Callable[[Any], Any],
    split: SplitData,
    *,
    cache_dir: Path,
    key: str,
    input_size: int,
    batch_size: int,
    meta: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
    examples: int | None = None,
) -> Extraction:
    """The split's vectors from the cache, or computed now and cached (``meta`` may be computed afterwards).

    Cached vectors are used only when their files match the digests recorded when they were written; damaged
    ones are computed again and replaced.
    """
    started = time.monotonic()
    folder = split_dir(cache_dir, key, split.name)
    cached = load_embeddings(cache_dir, key, split.name)
    if cached is not None:
        LOG.info("features (%s): %d vectors from the cache (%s)", split.name, len(cached.labels), key[:12])
        return Extraction(cached, True, time.monotonic() - started)
    damaged = folder.is_dir()  # there, but load_embeddings did not take it
    embeddings = extract(tf, feature_fn, split, input_size, batch_size, examples=examples)
    seconds = time.monotonic() - started
    count, dim = embeddings.features.shape
    LOG.info("features (%s): %d vectors of %d in %.1f s (%.1f img/s)", split.name, count, dim, seconds, count / seconds)
    described = meta() if callable(meta) else meta
    save_embeddings(
        folder, embeddings, {**described, "split": split.name, "count": count, "dimension": dim, "key": key}
    )
    return Extraction(embeddings, False, seconds, recomputed=damaged)
