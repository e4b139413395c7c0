"""The train stage's core: one model per backbone, the from-scratch baseline, and the comparison table.

Plain paths and values in (:class:`TrainRequest`), a typed result out (:class:`TrainOutcome`); no runner, no
KFP. Output folder::

    models/<name>/...   one folder per model (see :mod:`.session`)
    logs/<name>/...     one TensorBoard run per model (see :mod:`.summaries`)
    summary.json        one row per model, and the best model by test accuracy
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubpipe.components.backbones import resolve_backbone
from hubpipe.components.common.features import read_class_names
from hubpipe.components.common.split_vectors import read_split_keys
from hubpipe.components.train.devices import (
    plan_devices,
    training_runtime,
    visible_gpus,
)
from hubpipe.components.train.inputs import class_counts, load_split
from hubpipe.components.train.layout import SUMMARY_FILE
from hubpipe.components.train.naming import unique_model_names
from hubpipe.components.train.scratch import train_scratch
from hubpipe.components.train.session import DatasetInfo, ModelResult, Session, TrainRequest
from hubpipe.components.train.summaries import write_experiment
from hubpipe.components.train.threads import configure_tensorflow_threads, usable_cores
from hubpipe.components.train.transfer import train_transfer
from hubpipe.pipeline.core.artifacts import write_json_atomic
from hubpipe.pipeline.core.errors import DataError
from hubpipe.pipeline.core.runtime import import_tensorflow, onednn_enabled

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOutcome:
    """The models of a run and how they were trained."""

    models: list[ModelResult]
    best_model: str
    device: str
    precision: str
    feature_extraction_seconds: dict[str, float]  # per feature-extraction model
    embeddings_cached: dict[str, bool]  # per feature-extraction model: every vector came from the vector store
    extraction_engine: dict[str, str]  # per feature-extraction model: "tflite", "tensorflow" or "cache"
    cores: int  # usable cores the thread pools were sized for
    onednn: bool | None = None  # TensorFlow ran its oneDNN CPU kernels (None: it could not say)
    #: per feature-extraction model: vectors embedded by this run (the others came from the vector store)
    vectors_computed: dict[str, int] = dataclasses.field(default_factory=dict)
    #: per feature-extraction model: vector-store shards ignored as damaged (their vectors were computed again)
    damaged_shards: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def results(self) -> dict[str, Any]:
        """The key results for run.json (small)."""
        best = next(model for model in self.models if model.name == self.best_model)
        return {
            "best_model": self.best_model,
            "best_test_accuracy": round(best.test_accuracy, 4),
            "models": {
                model.name: {"test_accuracy": round(model.test_accuracy, 4), "train_seconds": model.train_seconds}
                for model in self.models
            },
            "feature_extraction_seconds": self.feature_extraction_seconds,
            "embeddings_cached": self.embeddings_cached,
            "vectors_computed": self.vectors_computed,
            "damaged_shards": self.damaged_shards,
            "extraction_engine": self.extraction_engine,
            "usable_cores": self.cores,
            "tensorflow_onednn": self.onednn,
            "device": self.device,
            "precision": self.precision,
        }


def load_dataset_info(tf: Any, ingest_dir: Path) -> DatasetInfo:
    """Class names, split files, content keys and class counts of the ingested examples; DataError when unusable.

    Per example only its content key and label (and a test example's id) are kept, about 50 bytes.
    """
    class_names = read_class_names(ingest_dir)
    train, test = load_split(ingest_dir, "train"), load_split(ingest_dir, "test")
    train_keys = read_split_keys(tf, list(train.files))
    test_keys = read_split_keys(tf, list(test.files), with_ids=True)
    if not len(train_keys) or not len(test_keys):
        raise DataError(f"the {'train' if not len(train_keys) else 'test'} split under {ingest_dir} has no examples")
    counts = class_counts(train_keys.labels, class_names)
    class_counts(test_keys.labels, class_names)
    return DatasetInfo(class_names, train, test, counts, train_keys, test_keys)


def train_models(request: TrainRequest, gpus: Sequence[str] | None = None) -> TrainOutcome:
    """Trains every configured model into ``request.output_dir``; ``gpus`` overrides the visible GPUs."""
    tf = import_tensorflow()
    cores = usable_cores()
    configure_tensorflow_threads(tf, cores)
    config = request.train
    plan = plan_devices(config.precision, visible_gpus(tf) if gpus is None else gpus)
    data = load_dataset_info(tf, request.ingest_dir)
    LOG.info("training on %d images of %d classes, testing on %d", data.num_train, len(data.class_names), data.num_test)
    results: list[ModelResult] = []
    extraction: dict[str, float] = {}
    cached: dict[str, bool] = {}
    engines: dict[str, str] = {}
    computed: dict[str, int] = {}
    damaged: dict[str, list[str]] = {}
    with training_runtime(tf, plan) as strategy:
        session = Session(tf, request, plan, strategy, data, cores)
        names = unique_model_names([resolve_backbone(backbone).name for backbone in config.backbones])
        for backbone, name in zip(config.backbones, names, strict=True):
            outcome = train_transfer(session, backbone, name)
            results.extend(outcome.models)
            extraction[name] = round(outcome.feature_extraction_seconds, 3)
            cached[name] = outcome.embeddings_cached
            engines[name] = outcome.engine
            computed[name] = outcome.vectors_computed
            damaged[name] = outcome.damaged_shards
        if config.baseline:
            results.append(train_scratch(session))
    best = max(results, key=lambda model: model.test_accuracy)
    write_experiment(tf, session.logs_dir)
    write_json_atomic(
        request.output_dir / SUMMARY_FILE,
        {
            "best_model": best.name,
            "device": plan.device,
            "precision": plan.precision,
            "models": [dataclasses.asdict(model) for model in results],
        },
    )
    return TrainOutcome(
        results,
        best.name,
        plan.device,
        plan.precision,
        extraction,
        cached,
        engines,
        cores,
        onednn_enabled(),
        computed,
        damaged,
    )
