"""The embedding cache: its key, reuse, atomic writes, and what it does with damaged entries."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hubpipe.components.common import feature_vectors
from hubpipe.components.train import embeddings
from hubpipe.components.train.inputs import load_split
from hubpipe.pipeline.runtime import import_tensorflow

SPLITS = {"train": "a", "test": "b"}


def test_key_depends_on_backbone_preprocessing_and_data() -> None:
    key = embeddings.embedding_key("fp", 224, (0.0, 1.0), SPLITS)
    assert key == embeddings.embedding_key("fp", 224, (0.0, 1.0), dict(reversed(SPLITS.items())))
    others = {
        embeddings.embedding_key("fp2", 224, (0.0, 1.0), SPLITS),
        embeddings.embedding_key("fp", 192, (0.0, 1.0), SPLITS),
        embeddings.embedding_key("fp", 224, (-1.0, 1.0), SPLITS),
        embeddings.embedding_key("fp", 224, (0.0, 1.0), {"train": "a", "test": "c"}),
    }
    assert key not in others and len(others) == 4


def test_vectors_are_computed_once_then_reused(tmp_path: Path, ingest_dir: Path) -> None:
    tf = import_tensorflow()
    split = load_split(ingest_dir, "test")
    calls = []

    def mean_colour(images):
        calls.append(int(images.shape[0]))
        return tf.reduce_mean(images, axis=[1, 2])

    args = {"cache_dir": tmp_path, "key": "k1", "input_size": 16, "batch_size": 4, "meta": {"backbone": "mean"}}
    first = embeddings.ensure_embeddings(tf, mean_colour, split, **args)
    assert not first.cached and sum(calls) == 9
    second = embeddings.ensure_embeddings(tf, mean_colour, split, **args)
    assert second.cached and sum(calls) == 9
    assert np.array_equal(first.embeddings.features, second.embeddings.features)
    assert list(second.embeddings.ids) == list(first.embeddings.ids)
    assert second.embeddings.features.shape == (9, 3) and second.embeddings.features.dtype == np.float32
    assert list(second.embeddings.labels) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    folder = feature_vectors.split_dir(tmp_path, "k1", "test")
    assert sorted(p.name for p in folder.parent.iterdir()) == ["test"]  # no temporary folders left
    assert feature_vectors.load_embeddings(tmp_path, "k1", "train") is None


def test_a_damaged_entry_is_recomputed(tmp_path: Path, ingest_dir: Path) -> None:
    tf = import_tensorflow()
    split = load_split(ingest_dir, "test")
    folder = feature_vectors.split_dir(tmp_path, "k2", "test")
    folder.mkdir(parents=True)
    np.save(folder / feature_vectors.FEATURES_FILE, np.zeros((2, 3), np.float32))  # examples.npz missing
    assert feature_vectors.load_embeddings(tmp_path, "k2", "test") is None
    result = embeddings.ensure_embeddings(
        tf,
        lambda images: tf.reduce_mean(images, axis=[1, 2]),
        split,
        cache_dir=tmp_path,
        key="k2",
        input_size=16,
        batch_size=4,
        meta={},
    )
    assert not result.cached
    reloaded = feature_vectors.load_embeddings(tmp_path, "k2", "test")
    assert reloaded is not None and reloaded.features.shape == (9, 3)


def test_cached_vectors_line_up_with_the_split_ids(tmp_path: Path) -> None:
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    cached = feature_vectors.Embeddings(vectors, np.array([0, 1, 0]), np.array(["a", "b", "c"]))
    feature_vectors.save_embeddings(feature_vectors.split_dir(tmp_path, "k3", "test"), cached, {})
    lined_up = feature_vectors.vectors_in_order(tmp_path, "k3", "test", ["c", "a"])
    assert lined_up.tolist() == [[4.0, 5.0], [0.0, 1.0]]
    assert feature_vectors.vectors_in_order(tmp_path, "k3", "test", ["a", "unknown"]) is None
    assert feature_vectors.vectors_in_order(tmp_path, "other", "test", ["a"]) is None
