"""The offline backbones end to end on tiny data (slow: builds each offline EfficientNet-Lite on first use)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import train_fixtures

from hubpipe.components.common.split_vectors import stored_test_split
from hubpipe.components.train.core import train_models
from hubpipe.components.train.session import TrainRequest
from hubpipe.pipeline.core.cache_root import cache_root
from hubpipe.pipeline.core.config import TrainConfig
from hubpipe.pipeline.core.runtime import import_tensorflow

# The weights packages are dependencies of hubpipe (setup.py): a missing one fails here rather than skipping.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("name", "size"), [("efficientnet_lite0", 224), ("efficientnet_lite1", 240), ("efficientnet_lite2", 260)]
)
def test_each_offline_model_trains_and_serves_jpeg_bytes_at_its_own_size(
    name: str, size: int, tmp_path: Path, ingest_dir: Path
) -> None:
    """Each preset's images are resized to its input size for the embeddings and in the serving model: the
    serving model, given JPEG bytes, gives the probabilities the head gave on the stored test vectors."""
    store = str(tmp_path / "vectors")
    config = TrainConfig(
        backbones=(name,), epochs=2, batch_size=16, baseline=False, precision="auto", vector_store=store
    )
    request = TrainRequest(ingest_dir, tmp_path / "train", tmp_path / "cache", config, 224, cache_root())
    request.output_dir.mkdir()
    outcome = train_models(request)
    assert [model.name for model in outcome.models] == [name]

    folder = request.output_dir / "models" / name
    record = json.loads((folder / "model.json").read_text())
    assert record["input_size"] == size and record["backbone"]["output_dim"] == 1280
    with np.load(folder / "test_predictions.npz") as saved:
        ids = saved["ids"]
    stored = stored_test_split(import_tensorflow(), store, record["vector_space"], ingest_dir, ids)
    assert stored is not None and stored.vectors().shape == (9, 1280)

    tf = import_tensorflow()
    images = train_fixtures.example_images("test", train_fixtures.TEST_PER_CLASS)
    serve = tf.saved_model.load(str(folder / "serving")).signatures["serving_default"]
    probabilities = serve(images=tf.constant([data for _, _, _, data in images]))["probabilities"].numpy()
    with np.load(folder / "test_predictions.npz") as saved:
        by_id = dict(zip(saved["ids"], saved["probabilities"], strict=True))
    assert np.allclose(probabilities, np.stack([by_id[example_id] for example_id, *_ in images]), atol=1e-4)


def test_efficientnet_lite0_converts_to_tflite_with_parity(tmp_path: Path) -> None:
    from hubpipe.components.backbones import resolve_backbone
    from hubpipe.components.train import engine
    from hubpipe.components.train.engine import frozen_features

    tf = import_tensorflow()
    spec = resolve_backbone("efficientnet_lite0")
    features, identity = frozen_features(tf, spec)
    chosen = engine.select_engine(
        tf, "auto", "CPU", features, identity, conversions=engine.conversion_dir(cache_root()), threads=2
    )
    assert chosen.name == engine.TFLITE, chosen.reason
    images = engine.probe_batch(spec.input_size)[:3]
    expected = np.asarray(features(images, training=False))
    assert expected.shape == (3, 1280)
    diff, allowed = engine.parity(expected, chosen.features(images))
    assert diff <= allowed < 1e-2
