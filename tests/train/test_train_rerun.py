"""Reruns: cached vectors when only training settings change; the same metrics for the same seed."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import train_fixtures

from hubpipe.components.common.vector_store import open_index
from hubpipe.components.train.core import train_models
from hubpipe.components.train.session import TrainRequest
from hubpipe.pipeline.core.cache_root import cache_root


def run(root: Path, name: str, cache: str, ingest_dir: Path, backbone: Path, **changes) -> tuple[dict, dict]:
    """Trains into ``root/name`` with the vector store ``root/cache/vectors``."""
    store = str(root / cache / "vectors")
    config = train_fixtures.tiny_train_config(backbone, baseline_epochs=1, vector_store=store, **changes)
    output = root / name
    output.mkdir()
    outcome = train_models(
        TrainRequest(ingest_dir, output, root / cache, config, train_fixtures.SCRATCH_SIZE, cache_root())
    )
    histories = {
        model.name: json.loads((output / "models" / model.name / "model.json").read_text())["history"]
        for model in outcome.models
    }
    return outcome.results(), histories


def test_same_seed_same_metrics_and_epoch_change_reuses_vectors(
    tmp_path: Path, ingest_dir: Path, tiny_backbone: Path
) -> None:
    first, first_history = run(tmp_path, "a", "cache1", ingest_dir, tiny_backbone)
    again, again_history = run(tmp_path, "b", "cache2", ingest_dir, tiny_backbone)  # fresh cache: recomputed
    assert again["embeddings_cached"] == {"tiny_backbone": False}
    assert again_history == first_history
    assert {n: m["test_accuracy"] for n, m in again["models"].items()} == {
        n: m["test_accuracy"] for n, m in first["models"].items()
    }

    more, more_history = run(tmp_path, "c", "cache1", ingest_dir, tiny_backbone, epochs=4, baseline=False)
    assert more["embeddings_cached"] == {"tiny_backbone": True}
    assert len(more_history["tiny_backbone"]) == 4
    assert more_history["tiny_backbone"][:3] == first_history["tiny_backbone"]  # cached vectors are exact
    assert len(list((tmp_path / "cache1" / "vectors").iterdir())) == 1  # one vector space
    assert not list((tmp_path / "cache1" / "checkpoints").iterdir())  # removed once training completed


def test_augmentation_trains_through_the_backbone_without_train_vectors(
    tmp_path: Path, ingest_dir: Path, tiny_backbone: Path
) -> None:
    results, history = run(tmp_path, "aug", "cache", ingest_dir, tiny_backbone, augment=True, baseline=False)
    record = json.loads((tmp_path / "aug" / "models" / "tiny_backbone" / "model.json").read_text())
    assert record["mode"] == "feature_extraction" and record["hparams"]["augment"] is True
    (space,) = (tmp_path / "cache" / "vectors").iterdir()
    test_images = train_fixtures.TEST_PER_CLASS * len(train_fixtures.CLASSES)
    assert len(open_index(str(space))) == test_images == results["vectors_computed"]["tiny_backbone"]
    assert [sorted(entry) for entry in history["tiny_backbone"]] == [
        ["accuracy", "epoch", "loss", "val_accuracy", "val_loss"]
    ] * 3
    assert (tmp_path / "aug" / "models" / "tiny_backbone" / "head" / "saved_model.pb").is_file()
    assert results["models"]["tiny_backbone"]["test_accuracy"] == round(record["test_accuracy"], 4)


def test_a_damaged_shard_is_recomputed_and_gives_the_clean_runs_model(
    tmp_path: Path, tiny_backbone: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Same-size random bytes over a stored shard's vectors (finite float32 values, the keys and frames kept, so
    the shard still parses and training would not diverge): only the digest recorded at write can tell, and the
    rerun computes those vectors again."""
    colours = train_fixtures.write_ingest_dir(
        tmp_path / "ingest", train_fixtures.colour_images, train_fixtures.COLOUR_CLASSES
    )
    settings = {"baseline": False, "epochs": 10, "learning_rate": 0.05}
    clean, _ = run(tmp_path, "clean", "cache", colours, tiny_backbone, **settings)
    assert clean["models"]["tiny_backbone"]["test_accuracy"] > 0.6  # far above chance: damaged vectors would show
    (space,) = (tmp_path / "cache" / "vectors").iterdir()
    (shard,) = space.glob("shard-*.tfrecord")
    count = json.loads(shard.with_suffix(".json").read_text())["count"]
    data = bytearray(shard.read_bytes())
    length = len(data) // count
    noise = np.random.default_rng(0).standard_normal((count, train_fixtures.BACKBONE_DIM)).astype(np.float32)
    for row in range(count):  # every vector replaced, each frame's key and length kept
        start = row * length + 12 + 32
        data[start : start + 4 * train_fixtures.BACKBONE_DIM] = noise[row].tobytes()
    shard.write_bytes(bytes(data))

    with caplog.at_level(logging.INFO, logger="hubpipe"):
        again, _ = run(tmp_path, "again", "cache", colours, tiny_backbone, **settings)
    assert again["models"] == {
        name: {**model, "train_seconds": again["models"][name]["train_seconds"]}
        for name, model in clean["models"].items()
    }
    assert again["embeddings_cached"] == {"tiny_backbone": False}
    assert again["vectors_computed"] == {"tiny_backbone": count}
    assert again["damaged_shards"] == {"tiny_backbone": [shard.stem]}
    record = json.loads((tmp_path / "again" / "models" / "tiny_backbone" / "model.json").read_text())
    assert record["damaged_shards"] == [shard.stem] and record["embeddings_cached"] is False
    messages = [r.getMessage() for r in caplog.records if "damaged or incomplete" in r.getMessage()]
    assert len(messages) == 1 and shard.stem in messages[0]

    repaired, _ = run(tmp_path, "repaired", "cache", colours, tiny_backbone, **settings)
    assert repaired["embeddings_cached"] == {"tiny_backbone": True}
    assert repaired["vectors_computed"] == {"tiny_backbone": 0}


def test_two_runs_over_the_same_images_share_vectors(tmp_path: Path, ingest_dir: Path, tiny_backbone: Path) -> None:
    """Two run folders (their own caches) with one vector store: the second embeds nothing."""
    store = str(tmp_path / "shared-store")
    results = []
    for name in ("one", "two"):
        config = train_fixtures.tiny_train_config(tiny_backbone, baseline=False, epochs=1, vector_store=store)
        (tmp_path / name).mkdir()
        request = TrainRequest(ingest_dir, tmp_path / name, tmp_path / f"cache-{name}", config, 32, cache_root())
        results.append(train_models(request).results())
    total = (train_fixtures.TRAIN_PER_CLASS + train_fixtures.TEST_PER_CLASS) * len(train_fixtures.CLASSES)
    assert results[0]["vectors_computed"] == {"tiny_backbone": total}
    assert results[1]["vectors_computed"] == {"tiny_backbone": 0}
    assert results[1]["extraction_engine"] == {"tiny_backbone": "cache"}


def test_epochs_change_reuses_the_trained_baseline(tmp_path: Path, ingest_dir: Path, tiny_backbone: Path) -> None:
    """The baseline trains ``baseline_epochs``: a rerun that changes only ``epochs`` loads its weights."""
    first, _ = run(tmp_path, "a", "cache", ingest_dir, tiny_backbone, epochs=2)
    first_model = json.loads((tmp_path / "a" / "models" / "scratch_cnn" / "model.json").read_text())
    assert first_model["reused_training"] is False
    more, more_history = run(tmp_path, "b", "cache", ingest_dir, tiny_backbone, epochs=3)
    record = json.loads((tmp_path / "b" / "models" / "scratch_cnn" / "model.json").read_text())
    assert record["reused_training"] is True and record["history"] == first_model["history"]
    assert more["models"]["scratch_cnn"]["test_accuracy"] == first["models"]["scratch_cnn"]["test_accuracy"]
    assert more["models"]["scratch_cnn"]["train_seconds"] == 0.0
    predictions = [np.load(tmp_path / run / "models" / "scratch_cnn" / "test_predictions.npz") for run in "ab"]
    np.testing.assert_array_equal(predictions[0]["probabilities"], predictions[1]["probabilities"])
    assert len(more_history["tiny_backbone"]) == 3  # the transfer model did train for the new epochs
    assert len(list((tmp_path / "cache" / "trained").iterdir())) == 1  # one entry per model name
    run(tmp_path, "c", "cache", ingest_dir, tiny_backbone, epochs=3, learning_rate=0.02)
    again = json.loads((tmp_path / "c" / "models" / "scratch_cnn" / "model.json").read_text())
    assert again["reused_training"] is False  # a setting it uses: trained again
    assert len(list((tmp_path / "cache" / "trained").iterdir())) == 1
