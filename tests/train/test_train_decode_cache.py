"""Decoded images for end-to-end fits: decoded once per run, in memory or in a snapshot, the same batches."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import train_fixtures

from hubpipe.components.train.core import load_dataset_info
from hubpipe.components.train.devices import plan_devices
from hubpipe.components.train.session import DECODED_DIR, Session, TrainRequest
from hubpipe.pipeline.core.runtime import import_tensorflow


def _session(ingest: Path, cache: Path, backbone: Path, **changes: object) -> Session:
    tf = import_tensorflow()
    config = train_fixtures.tiny_train_config(backbone, **changes)
    request = TrainRequest(ingest, cache.parent / "out", cache, config, train_fixtures.SCRATCH_SIZE, cache.parent)
    data = load_dataset_info(tf, ingest)
    return Session(tf, request, plan_devices("float32", []), tf.distribute.get_strategy(), data)


def _epoch(dataset) -> tuple[np.ndarray, np.ndarray]:
    images, labels = zip(*((x.numpy(), y.numpy()) for x, y in dataset), strict=True)
    return np.concatenate(images), np.concatenate(labels)


@pytest.mark.parametrize(("budget_mb", "snapshot"), [(2048, False), (0, True)])
def test_later_epochs_read_decoded_images_without_the_records(
    tmp_path: Path, ingest_dir: Path, tiny_backbone: Path, budget_mb: int, snapshot: bool
) -> None:
    ingest = Path(shutil.copytree(ingest_dir, tmp_path / "ingest"))
    reference = _session(ingest_dir, tmp_path / "ref-cache", tiny_backbone, decode_cache=False)
    uncached = reference.image_batches(reference.data.train, 32, shuffle=True)
    expected = [_epoch(uncached) for _ in range(2)]  # two epochs: two different shuffles

    session = _session(ingest, tmp_path / "cache", tiny_backbone, decode_cache_mb=budget_mb)
    batches = session.image_batches(session.data.train, 32, shuffle=True)
    first = _epoch(batches)
    for path in session.data.train.files:
        path.unlink()  # a second epoch that decoded again would fail here
    second = _epoch(batches)
    for got, want in zip((first, second), expected, strict=True):
        np.testing.assert_array_equal(got[1], want[1])  # same shuffle order as without a cache
        np.testing.assert_array_equal(got[0], want[0])  # the same float32 pixels
    assert (tmp_path / "cache" / DECODED_DIR).is_dir() is snapshot


def test_without_the_decode_cache_every_epoch_decodes_again(
    tmp_path: Path, ingest_dir: Path, tiny_backbone: Path
) -> None:
    tf = import_tensorflow()
    ingest = Path(shutil.copytree(ingest_dir, tmp_path / "ingest"))
    session = _session(ingest, tmp_path / "cache", tiny_backbone, decode_cache=False)
    batches = session.image_batches(session.data.train, 32, shuffle=False)
    _epoch(batches)
    for path in session.data.train.files:
        path.unlink()
    with pytest.raises(tf.errors.NotFoundError):
        _epoch(batches)
