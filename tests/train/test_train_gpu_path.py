"""The GPU code path (mixed_float16, MirroredStrategy) run end to end on the CPU, with two GPUs injected."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import train_fixtures

from hubpipe.components.train.core import train_models
from hubpipe.components.train.session import TrainRequest
from hubpipe.pipeline.core.cache_root import cache_root
from hubpipe.pipeline.core.runtime import import_tensorflow

TWO_GPUS = ["/physical_device:GPU:0", "/physical_device:GPU:1"]


def test_mixed_precision_under_mirrored_strategy_trains_and_serves_float32(
    tmp_path: Path, ingest_dir: Path, tiny_backbone: Path
) -> None:
    config = train_fixtures.tiny_train_config(
        tiny_backbone, precision="auto", epochs=2, fine_tune_layers=1, fine_tune_epochs=1, baseline_epochs=1
    )
    request = TrainRequest(
        ingest_dir, tmp_path / "train", tmp_path / "cache", config, train_fixtures.SCRATCH_SIZE, cache_root()
    )
    request.output_dir.mkdir()
    outcome = train_models(request, gpus=TWO_GPUS)  # MirroredStrategy falls back to the CPU as its one replica
    assert (outcome.device, outcome.precision) == ("GPU", "mixed_float16")
    assert [m.name for m in outcome.models] == ["tiny_backbone", "tiny_backbone_fine_tuned", "scratch_cnn"]

    tf = import_tensorflow()
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # restored
    jpeg = train_fixtures.example_images("test", 1)[0][3]
    for model in outcome.models:
        folder = request.output_dir / "models" / model.name
        assert json.loads((folder / "model.json").read_text())["precision"] == "mixed_float16"
        with np.load(folder / "test_predictions.npz") as saved:
            assert saved["probabilities"].dtype == np.float32
            assert np.allclose(saved["probabilities"].sum(axis=1), 1.0, atol=1e-3)
        serve = tf.saved_model.load(str(folder / "serving")).signatures["serving_default"]
        assert serve(images=tf.constant([jpeg]))["probabilities"].dtype == tf.float32
