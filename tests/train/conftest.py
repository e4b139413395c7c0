"""Fixtures of the train tests: a tiny example folder and a tiny backbone, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import train_fixtures


@pytest.fixture(scope="session")
def ingest_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_fixtures.write_ingest_dir(tmp_path_factory.mktemp("ingest"))


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_fixtures.write_tiny_backbone(tmp_path_factory.mktemp("backbone") / "tiny_backbone")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, ingest_dir: Path, tiny_backbone: Path):
    """One run of the train core with every model kind: feature extraction, fine-tuned, scratch; TFLite on."""
    from hubpipe.components.train.core import train_models
    from hubpipe.components.train.session import TrainRequest
    from hubpipe.pipeline.core.cache_root import cache_root

    root = tmp_path_factory.mktemp("trained")
    config = train_fixtures.tiny_train_config(
        tiny_backbone,
        fine_tune_layers=1,
        fine_tune_epochs=1,
        export_tflite=True,
        baseline_epochs=1,
        vector_store=str(root / "vectors"),
    )
    request = TrainRequest(
        ingest_dir, root / "train", root / "cache", config, train_fixtures.SCRATCH_SIZE, cache_root()
    )
    request.output_dir.mkdir()
    return request, train_models(request)
