"""Reruns: cached vectors when only training settings change; the same metrics for the same seed."""

from __future__ import annotations

import json
from pathlib import Path

import train_fixtures

from hubpipe.components.train.core import train_models
from hubpipe.components.train.session import TrainRequest


def run(root: Path, name: str, cache: str, ingest_dir: Path, backbone: Path, **changes) -> tuple[dict, dict]:
    config = train_fixtures.tiny_train_config(backbone, baseline_epochs=1, **changes)
    output = root / name
    output.mkdir()
    outcome = train_models(TrainRequest(ingest_dir, output, root / cache, config, train_fixtures.SCRATCH_SIZE))
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
