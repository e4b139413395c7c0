"""The train stage through the local runner (with stand-in upstream stages), and its error paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import train_fake_upstream

from hubpipe.components.train.core import load_dataset_info
from hubpipe.components.train.executor import external_inputs
from hubpipe.pipeline.core.config import apply_overrides, load_config
from hubpipe.pipeline.core.errors import DataError, UsageError
from hubpipe.pipeline.core.runtime import import_tensorflow
from hubpipe.pipeline.local_runner import run_pipeline
from hubpipe.pipeline.stages import TRAIN_STAGE

STAGES = (*train_fake_upstream.UPSTREAM, TRAIN_STAGE)


def tiny_config(backbone: Path, epochs: int, store: Path | None = None):
    return load_config(
        overrides={
            "train.vector_store": str(store or ""),
            "train.backbones": [str(backbone)],
            "train.epochs": epochs,
            "train.batch_size": 8,
            "train.baseline_epochs": 1,
            "train.precision": "float32",
            "data.image_size": 32,
        }
    )


def test_stage_runs_after_upstream_and_reruns_with_cached_vectors(
    tmp_path: Path, ingest_dir: Path, tiny_backbone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAIN_TEST_INGEST", str(ingest_dir))
    out, store = tmp_path / "run", tmp_path / "vectors"
    first = run_pipeline(tiny_config(tiny_backbone, 2, store), out, STAGES)
    train = first.stage("train")
    assert train.status == "ran"
    assert train.results["best_model"] in {"tiny_backbone", "scratch_cnn"}
    assert set(train.results["models"]) == {"tiny_backbone", "scratch_cnn"}
    assert train.results["embeddings_cached"] == {"tiny_backbone": False}
    assert train.artifacts == {"models": "train/models", "logs": "train/logs", "summary": "train/summary.json"}
    assert json.loads((out / "train" / "summary.json").read_text())["best_model"] == train.results["best_model"]
    assert len(list(store.glob("*/shard-*.json"))) >= 1

    assert run_pipeline(tiny_config(tiny_backbone, 2, store), out, STAGES).stage("train").status == "cached"

    second = run_pipeline(tiny_config(tiny_backbone, 3, store), out, STAGES)
    assert [r.status for r in second.stages] == ["cached", "cached", "ran"]
    assert second.stage("train").results["embeddings_cached"] == {"tiny_backbone": True}
    record = json.loads((out / "train" / "models" / "tiny_backbone" / "model.json").read_text())
    assert len(record["history"]) == 3


def test_backbone_fingerprints_are_external_inputs(tiny_backbone: Path) -> None:
    config = apply_overrides(load_config(), {"train.backbones": [str(tiny_backbone)]})
    fingerprints = external_inputs(config, {}, None)["backbones"]
    assert fingerprints[str(tiny_backbone)].startswith("sha256:")
    with pytest.raises(UsageError, match="unknown backbone"):
        external_inputs(apply_overrides(load_config(), {"train.backbones": ["no_such_net"]}), {}, None)


def test_missing_or_empty_examples_are_data_errors(tmp_path: Path, ingest_dir: Path) -> None:
    tf = import_tensorflow()
    with pytest.raises(DataError, match=r"labels\.txt"):
        load_dataset_info(tf, tmp_path)
    (tmp_path / "labels.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match="no train examples"):
        load_dataset_info(tf, tmp_path)
    (tmp_path / "examples").mkdir()
    for split in ("train", "test"):
        (tmp_path / "examples" / f"{split}-00000-of-00001.tfrecord").write_bytes(b"")
    with pytest.raises(DataError, match="has no examples"):
        load_dataset_info(tf, tmp_path)
    (tmp_path / "labels.txt").write_text("only\n")
    with pytest.raises(DataError, match="at least 2"):
        load_dataset_info(tf, tmp_path)
