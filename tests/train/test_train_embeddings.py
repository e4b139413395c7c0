"""The embedding cache: its key, reuse, atomic writes, and what it does with damaged entries."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from hubpipe.components.common import feature_vectors
from hubpipe.components.train import embeddings
from hubpipe.components.train.inputs import load_split
from hubpipe.pipeline.core.runtime import import_tensorflow

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


@pytest.mark.parametrize("damage", ["features_bytes", "examples_bytes", "no_digest"])
def test_cached_files_are_checked_against_their_recorded_digests(
    tmp_path: Path, ingest_dir: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    tf = import_tensorflow()
    split = load_split(ingest_dir, "test")
    args = {"cache_dir": tmp_path, "key": "k4", "input_size": 16, "batch_size": 4, "meta": {}}
    first = embeddings.ensure_embeddings(tf, lambda images: tf.reduce_mean(images, axis=[1, 2]), split, **args)
    folder = feature_vectors.split_dir(tmp_path, "k4", "test")
    meta = json.loads((folder / feature_vectors.META_FILE).read_text())
    assert sorted(meta["sha256"]) == [feature_vectors.EXAMPLES_FILE, feature_vectors.FEATURES_FILE]
    path = folder / (feature_vectors.FEATURES_FILE if damage == "features_bytes" else feature_vectors.EXAMPLES_FILE)
    if damage == "no_digest":  # written by a hubpipe that recorded none
        del meta["sha256"]
        (folder / feature_vectors.META_FILE).write_text(json.dumps(meta))
    else:  # one byte of the payload changed: numpy still reads the file
        data = bytearray(path.read_bytes())
        data[-30] ^= 1
        path.write_bytes(bytes(data))
    with caplog.at_level(logging.INFO, logger="hubpipe"):
        assert feature_vectors.load_embeddings(tmp_path, "k4", "test") is None
        again = embeddings.ensure_embeddings(tf, lambda images: tf.reduce_mean(images, axis=[1, 2]), split, **args)
    problem = (
        "no digests recorded in meta.json"
        if damage == "no_digest"
        else f"{path.name} does not match its recorded SHA-256"
    )
    expected = f"the cached feature vectors in {folder} are damaged or incomplete ({problem}): not used"
    assert [r.getMessage() for r in caplog.records].count(expected) == 2
    assert not again.cached and again.recomputed
    assert np.array_equal(again.embeddings.features, first.embeddings.features)
    reloaded = feature_vectors.load_embeddings(tmp_path, "k4", "test")  # replaced by intact files
    assert reloaded is not None and list(reloaded.ids) == list(first.embeddings.ids)
