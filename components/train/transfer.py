"""Transfer models: feature vectors computed once per backbone, a head trained on them, optional fine-tuning.

* Feature extraction (the default): the frozen backbone turns every image into a vector once, kept in the
  content-addressed vector store (:mod:`..common.vector_store`; embedded by a Beam job, :mod:`.extraction`,
  only for images the store lacks), and the head trains on vectors streamed from the store for all epochs.
* With ``train.augment``: random flips, rotations and zooms change the images every epoch, so the head trains
  through the frozen backbone on images; validation still uses the stored test vectors.
* With ``train.fine_tune_layers`` > 0: a second model ``<name>_fine_tuned`` starts from the trained head and
  unfreezes the top layers of a fresh copy of the backbone (BatchNorm stays frozen) at a lower learning rate.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hubpipe.components.backbones import BackboneSpec, load_feature_extractor, resolve_backbone
from hubpipe.components.common.head import build_head
from hubpipe.components.common.split_vectors import JoinedSplit, join_split
from hubpipe.components.common.vector_store import VectorSpace, space_dir, write_space_record
from hubpipe.components.train import models
from hubpipe.components.train.engine import (
    ENGINE_PARITY_CLASS,
    TFLITE,
    Engine,
    conversion_dir,
    frozen_features,
    select_engine,
)
from hubpipe.components.train.extraction import ExtractionJob, ExtractionRun, ensure_vectors
from hubpipe.components.train.fitting import FitOutcome, fit_resumable
from hubpipe.components.train.inputs import AUTOTUNE, RESIZE_METHOD, SplitData
from hubpipe.components.train.layout import FEATURE_EXTRACTION, FINE_TUNED, TRANSFER
from hubpipe.components.train.naming import FINE_TUNED_SUFFIX
from hubpipe.components.train.session import ModelRecord, ModelResult, Session
from hubpipe.pipeline.core.errors import DataError

LOG = logging.getLogger(__name__)

_EPSILON = 1e-7
#: Images per backbone call when computing vectors (at least train.batch_size): larger batches run faster on CPU.
EXTRACTION_BATCH = 128


#: The extraction engine recorded when every vector came from the vector store.
FROM_CACHE = {"engine": "cache", "reason": "vectors from the vector store", "max_abs_diff": None}
#: The head's shuffle buffer (vectors): a full shuffle up to this many train images, a buffer above, so that
#: training memory does not grow with the dataset (about 51 MB at 1280 dimensions).
SHUFFLE_BUFFER_VECTORS = 10_000


@dataclass
class Backbone:
    """A loaded backbone and the vector space its vectors belong to."""

    spec: BackboneSpec
    fingerprint: str
    space: VectorSpace
    features: Any  # Keras model: images in [0, 1] -> vectors
    engine: Callable[[], Engine]  # chooses (and converts) on first call, then returns the same engine


@dataclass(frozen=True)
class TransferOutcome:
    models: list[ModelResult]
    feature_extraction_seconds: float
    embeddings_cached: bool
    engine: str  # "tensorflow", "tflite", or "cache" when no vector was computed
    vectors_computed: int  # vectors embedded and stored by this run (the rest came from the store)
    damaged_shards: list[str]  # store shards ignored as damaged (their vectors were computed again)


def train_transfer(session: Session, backbone_name: str, model_name: str) -> TransferOutcome:
    """Trains (and writes) the feature-extraction model of one backbone, and its fine-tuned variant if asked."""
    tf, config = session.tf, session.config
    backbone = _load_backbone(session, resolve_backbone(backbone_name))
    splits, extraction = _vectors(session, backbone)
    test = splits["test"]
    cached = extraction.computed == 0
    # The engine is chosen only when a vector is missing (see _vectors).
    engine_used = dict(FROM_CACHE) if cached else backbone.engine().describe()
    head, fit = _train_head(session, backbone, model_name, splits.get("train"), test)
    probabilities = predict_split(head, test, config.batch_size)
    damaged = list(extraction.index.damaged)
    record = ModelRecord(
        name=model_name,
        kind=TRANSFER,
        mode=FEATURE_EXTRACTION,
        input_size=backbone.spec.input_size,
        hparams=session.hparams(),
        fit=fit,
        backbone=backbone.spec,
        backbone_fingerprint=backbone.fingerprint,
        vector_space=backbone.space.id,
        feature_extraction_seconds=extraction.seconds,
        extra={
            "embeddings_cached": cached,
            "vectors_computed": extraction.computed,
            "damaged_shards": damaged,
            "extraction_engine": engine_used,
        },
    )
    classifier = models.image_classifier(tf, backbone.features, head)
    results = [
        session.write_model(
            record, classifier, head=head, probabilities=probabilities, labels=test.labels, ids=test.ids
        )
    ]
    if config.fine_tune_layers > 0 and config.fine_tune_epochs > 0:
        results.append(_fine_tune(session, backbone, head, model_name))
    return TransferOutcome(results, extraction.seconds, cached, engine_used["engine"], extraction.computed, damaged)


def _vectors(session: Session, backbone: Backbone) -> tuple[dict[str, JoinedSplit], ExtractionRun]:
    """The splits training needs, joined to the vector store after embedding what it lacks.

    The engine is chosen (and the backbone converted if need be) only when a vector is missing.
    """
    data, spec = session.data, backbone.spec
    wanted = _extracted_splits(session)
    folder = space_dir(session.vector_store, backbone.space)
    about = {
        "backbone": spec.name,
        "space": backbone.space.id,
        "engine_class": backbone.space.engine_class,
    }

    def handler() -> Any:
        engine = backbone.engine()
        write_space_record(folder, backbone.space)
        return vector_handler(engine, spec, backbone.fingerprint, max(session.config.batch_size, EXTRACTION_BATCH))

    files = [path for split in wanted for path in split.files]
    job = ExtractionJob(files, folder, handler, session.request.beam_args, about)
    extraction = ensure_vectors(job, [data.keys(split).keys for split in wanted])
    joined = {split.name: join_split(extraction.index, data.keys(split)) for split in wanted}
    return joined, extraction


def vector_handler(engine: Engine, spec: BackboneSpec, fingerprint: str, batch_size: int) -> Any:
    """The RunInference model handler of ``engine``; the engine stays usable by handlers in this process."""
    from hubpipe.components.train.vector_handlers import (
        HandlerSpec,
        TensorFlowVectorHandler,
        TFLiteVectorHandler,
        register_loaded_engine,
    )

    handler_spec = HandlerSpec(spec, f"{fingerprint}:{engine.name}:{id(engine)}", batch_size)
    register_loaded_engine(handler_spec.engine_key, engine.features)
    if engine.name == TFLITE:
        if engine.model_path:
            return TFLiteVectorHandler(handler_spec, model_path=engine.model_path)
        return TFLiteVectorHandler(handler_spec, model=engine.features.model)
    return TensorFlowVectorHandler(handler_spec)


def _extracted_splits(session: Session) -> list[SplitData]:
    """The splits whose vectors training needs: only test's when augmenting (the train images change)."""
    data = session.data
    return [data.test] if session.config.augment else [data.train, data.test]


def _load_backbone(session: Session, spec: BackboneSpec) -> Backbone:
    tf = session.tf
    with session.float32_policy(), session.strategy.scope():
        features, identity = frozen_features(tf, spec)
    fingerprint = identity.fingerprint
    space = VectorSpace(fingerprint, spec.input_size, RESIZE_METHOD, tuple(spec.input_range), ENGINE_PARITY_CLASS)
    LOG.info("backbone %s loaded (input %d px, vector space %s)", spec.name, spec.input_size, space.id[:12])
    engine = functools.cache(
        lambda: select_engine(
            tf,
            session.config.engine,
            session.plan.device,
            features,
            identity,
            conversions=conversion_dir(session.request.cache_root),
            threads=session.cores,
            images=sum(session.data.count(split) for split in _extracted_splits(session)),
        )
    )
    return Backbone(spec, fingerprint, space, features, engine)


def vector_dataset(tf: Any, split: JoinedSplit, batch_size: int, shuffle_seed: int | None = None) -> Any:
    """Batches of ``(vector, label)`` streamed from the store in example order; shuffled through a buffer of
    at most :data:`SHUFFLE_BUFFER_VECTORS` when ``shuffle_seed`` is given (the whole split when it is smaller,
    which is a full shuffle)."""
    signature = (tf.TensorSpec([None, split.dimension], tf.float32), tf.TensorSpec([None], tf.int64))
    dataset = tf.data.Dataset.from_generator(split.chunks, output_signature=signature).unbatch()
    if shuffle_seed is not None:
        dataset = dataset.shuffle(min(len(split), SHUFFLE_BUFFER_VECTORS), seed=shuffle_seed)
    return dataset.batch(batch_size).prefetch(AUTOTUNE)


def predict_split(head: Any, split: JoinedSplit, batch_size: int) -> np.ndarray:
    """The head's probabilities on a split's stored vectors, in example order, a chunk at a time."""
    parts = [head.predict(vectors, batch_size=batch_size, verbose=0) for vectors, _ in split.chunks()]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def _train_head(
    session: Session, backbone: Backbone, name: str, train: JoinedSplit | None, test: JoinedSplit
) -> tuple[Any, FitOutcome]:
    """The head, trained on stored train vectors, or through the frozen backbone on augmented images."""
    tf, config = session.tf, session.config
    num_classes = len(session.data.class_names)
    session.seed_everything()
    with session.strategy.scope():
        head = build_head(tf, test.dimension, num_classes)
        trained = head
        if config.augment:
            augmentation = models.build_augmentation(tf, config.seed)
            trained = models.image_classifier(tf, backbone.features, head, augmentation)
        models.compile_classifier(tf, trained, config.learning_rate)
    if config.augment:
        train_data = session.image_batches(session.data.train, backbone.spec.input_size, shuffle=True)
    elif train is not None and len(train):
        train_data = vector_dataset(tf, train, config.batch_size, shuffle_seed=config.seed)
    else:
        raise DataError("the train split has no examples")
    identity = {"mode": FEATURE_EXTRACTION, "vector_space": backbone.space.id, "hparams": session.hparams()}
    fit = fit_resumable(
        tf,
        trained,
        train_data,
        label=name,
        epochs=config.epochs,
        checkpoint_dir=session.checkpoint_dir(name, identity),
        validate=lambda: _head_metrics(head, test, config.batch_size),  # stored test vectors: no backbone pass
    )
    return head, fit


def _head_metrics(head: Any, test: JoinedSplit, batch_size: int) -> dict[str, float]:
    """Validation loss and accuracy of ``head`` on the stored test vectors."""
    probabilities = np.concatenate([np.asarray(head(vectors, training=False)) for vectors, _ in test.chunks()])
    picked = probabilities[np.arange(len(test.labels)), test.labels]
    return {
        "val_loss": float(np.mean(-np.log(np.clip(picked, _EPSILON, 1.0)))),
        "val_accuracy": float(np.mean(np.argmax(probabilities, axis=1) == test.labels)),
    }


def _fine_tuning_classifier(session: Session, spec: BackboneSpec, head: Any) -> tuple[Any, Any]:
    """A fresh copy of the backbone with its top layers trainable, under a copy of the trained head; compiled."""
    tf, config = session.tf, session.config
    session.seed_everything()
    with session.strategy.scope():
        with session.float32_policy():
            extractor = load_feature_extractor(spec, trainable=False)
        backbone = models.tunable_backbone(tf, extractor, config.fine_tune_layers)
        features = models.feature_model(tf, backbone, spec.input_size, spec.input_range)
        tuned_head = tf.keras.models.clone_model(head)
        tuned_head.set_weights(head.get_weights())
        augmentation = models.build_augmentation(tf, config.seed) if config.augment else None
        classifier = models.image_classifier(tf, features, tuned_head, augmentation)
        models.compile_classifier(tf, classifier, config.fine_tune_learning_rate)
    return classifier, backbone


def _fine_tune(session: Session, base: Backbone, head: Any, base_name: str) -> ModelResult:
    """Continues from the trained head with the top backbone layers unfrozen, on a fresh copy of the backbone."""
    config, spec = session.config, base.spec
    name = base_name + FINE_TUNED_SUFFIX
    classifier, backbone = _fine_tuning_classifier(session, spec, head)
    LOG.info("%s: fine-tuning %d backbone variables", name, len(backbone.trainable_weights))
    hparams = session.hparams(
        learning_rate=config.fine_tune_learning_rate,
        epochs=config.fine_tune_epochs,
        fine_tune_layers=config.fine_tune_layers,
        initial_learning_rate=config.learning_rate,
        initial_epochs=config.epochs,
    )
    identity = {"mode": FINE_TUNED, "vector_space": base.space.id, "hparams": hparams}
    fit, probabilities = session.fit_on_images(
        classifier,
        name,
        spec.input_size,
        epochs=config.epochs + config.fine_tune_epochs,
        identity=identity,
        initial_epoch=config.epochs,
    )
    record = ModelRecord(
        name=name,
        kind=TRANSFER,
        mode=FINE_TUNED,
        input_size=spec.input_size,
        hparams=hparams,
        fit=fit,
        backbone=spec,
        backbone_fingerprint=base.fingerprint,
        extra={"fine_tuned_variables": len(backbone.trainable_weights), "base_model": base_name},
    )
    data = session.data
    return session.write_model(
        record, classifier, head=None, probabilities=probabilities, labels=data.test_labels, ids=data.test_ids
    )
