"""Reruns: cached vectors when only training settings change; the same metrics for the same seed."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import train_fixtures

from hubpipe.components.common.feature_vectors import FEATURES_FILE
from hubpipe.components.train.core import train_models
from hubpipe.components.train.session import TrainRequest
from hubpipe.pipeline.core.cache_root import cache_root


def run(root: Path, name: str, cache: str, ingest_dir: Path, backbone: Path, **changes) -> tuple[dict, dict]:
    config = train_fixtures.tiny_train_config(backbone, baseline_epochs=1, **changes)
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
    embeddings_root = tmp_path / "cache1" / "embeddings"
    assert len(list(embeddings_root.iterdir())) == 1
    assert not list((tmp_path / "cache1" / "checkpoints").iterdir())  # removed once training completed


def test_augmentation_trains_through_the_backbone_without_train_vectors(
    tmp_path: Path, ingest_dir: Path, tiny_backbone: Path
) -> None:
    results, history = run(tmp_path, "aug", "cache", ingest_dir, tiny_backbone, augment=True, baseline=False)
    record = json.loads((tmp_path / "aug" / "models" / "tiny_backbone" / "model.json").read_text())
    assert record["mode"] == "feature_extraction" and record["hparams"]["augment"] is True
    (key_dir,) = (tmp_path / "cache" / "embeddings").iterdir()
    assert sorted(p.name for p in key_dir.iterdir()) == ["test"]
    assert [sorted(entry) for entry in history["tiny_backbone"]] == [
        ["accuracy", "epoch", "loss", "val_accuracy", "val_loss"]
    ] * 3
    assert (tmp_path / "aug" / "models" / "tiny_backbone" / "head" / "saved_model.pb").is_file()
    assert results["models"]["tiny_backbone"]["test_accuracy"] == round(record["test_accuracy"], 4)


def test_damaged_cached_vectors_are_recomputed_and_give_the_clean_runs_model(
    tmp_path: Path, tiny_backbone: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Same-size random bytes in a cached ``features.npy`` (finite float32 values, its header kept, so numpy
    loads it and training does not diverge): only the digest recorded at write can tell, and the rerun
    computes the vectors again."""
    colours = train_fixtures.write_ingest_dir(
        tmp_path / "ingest", train_fixtures.colour_images, train_fixtures.COLOUR_CLASSES
    )
    settings = {"baseline": False, "epochs": 10, "learning_rate": 0.05}
    clean, _ = run(tmp_path, "clean", "cache", colours, tiny_backbone, **settings)
    assert clean["models"]["tiny_backbone"]["test_accuracy"] > 0.6  # far above chance: damaged vectors would show
    (key_dir,) = (tmp_path / "cache" / "embeddings").iterdir()
    damaged = key_dir / "train" / FEATURES_FILE
    shape, size = np.load(damaged).shape, damaged.stat().st_size
    noise = np.random.default_rng(0).standard_normal(shape).astype(np.float32).tobytes()
    with open(damaged, "r+b") as handle:
        handle.seek(size - len(noise))  # the header stays
        handle.write(noise)
    assert damaged.stat().st_size == size and np.load(damaged).shape == shape

    with caplog.at_level(logging.INFO, logger="hubpipe"):
        again, _ = run(tmp_path, "again", "cache", colours, tiny_backbone, **settings)
    assert again["models"] == {
        name: {**model, "train_seconds": again["models"][name]["train_seconds"]}
        for name, model in clean["models"].items()
    }
    assert again["embeddings_cached"] == {"tiny_backbone": False}
    assert again["embeddings_recomputed"] == {"tiny_backbone": ["train"]}
    record = json.loads((tmp_path / "again" / "models" / "tiny_backbone" / "model.json").read_text())
    assert record["embeddings_recomputed"] == ["train"] and record["embeddings_cached"] is False
    messages = [r.getMessage() for r in caplog.records if "damaged or incomplete" in r.getMessage()]
    assert len(messages) == 1 and str(key_dir / "train") in messages[0]

    repaired, _ = run(tmp_path, "repaired", "cache", colours, tiny_backbone, **settings)
    assert repaired["embeddings_cached"] == {"tiny_backbone": True}
    assert repaired["embeddings_recomputed"] == {"tiny_backbone": []}
