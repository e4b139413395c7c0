"""Transfer models: feature vectors computed once per backbone, a head trained on them, optional fine-tuning.

* Feature extraction (the default): the frozen backbone turns every image into a vector once (cached, see
  :mod:`.embeddings`) and the head trains on the vectors for all epochs.
* With ``train.augment``: random flips, rotations and zooms change the images every epoch, so the head trains
  through the frozen backbone on images; validation still uses the cached test vectors.
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

from hubpipe.components.backbones import BackboneSpec, backbone_fingerprint, load_feature_extractor, resolve_backbone
from hubpipe.components.common.head import build_head
from hubpipe.components.train import models
from hubpipe.components.train.embeddings import Embeddings, Extraction, embedding_key, ensure_embeddings
from hubpipe.components.train.engine import BackboneIdentity, Engine, conversion_dir, select_engine
from hubpipe.components.train.fitting import FitOutcome, fit_resumable
from hubpipe.components.train.inputs import AUTOTUNE, SplitData
from hubpipe.components.train.layout import FEATURE_EXTRACTION, FINE_TUNED, TRANSFER
from hubpipe.components.train.naming import FINE_TUNED_SUFFIX
from hubpipe.components.train.session import ModelRecord, ModelResult, Session
from hubpipe.pipeline.core.errors import DataError

LOG = logging.getLogger(__name__)

_EPSILON = 1e-7
#: Images per backbone call when computing vectors (at least train.batch_size): larger batches run faster on CPU.
EXTRACTION_BATCH = 128


#: The extraction engine recorded when every vector came from the embedding cache.
FROM_CACHE = {"engine": "cache", "reason": "vectors from the embedding cache", "max_abs_diff": None}


@dataclass
class Backbone:
    """A loaded backbone and the identity of its vectors for this dataset."""

    spec: BackboneSpec
    fingerprint: str
    key: str
    features: Any  # Keras model: images in [0, 1] -> vectors
    engine: Callable[[], Engine]  # chooses (and converts) on first call, then returns the same engine


@dataclass(frozen=True)
class TransferOutcome:
    models: list[ModelResult]
    feature_extraction_seconds: float
    embeddings_cached: bool
    engine: str  # "tensorflow", "tflite", or "cache" when no vector was computed
    recomputed: list[str]  # the splits whose cached vectors were damaged and computed again


def train_transfer(session: Session, backbone_name: str, model_name: str) -> TransferOutcome:
    """Trains (and writes) the feature-extraction model of one backbone, and its fine-tuned variant if asked."""
    tf, config = session.tf, session.config
    backbone = _load_backbone(session, resolve_backbone(backbone_name))
    extractions = _extract(session, backbone)
    test = extractions["test"].embeddings
    extraction_seconds = sum(e.seconds for e in extractions.values())
    cached = all(e.cached for e in extractions.values())
    recomputed = [name for name, extraction in extractions.items() if extraction.recomputed]
    # The engine is chosen only when a split is not cached (see _extract).
    engine_used = dict(FROM_CACHE) if cached else backbone.engine().describe()
    train = extractions["train"].embeddings if "train" in extractions else None
    head, fit = _train_head(session, backbone, model_name, train, test)
    probabilities = head.predict(test.features, batch_size=config.batch_size, verbose=0)
    record = ModelRecord(
        name=model_name,
        kind=TRANSFER,
        mode=FEATURE_EXTRACTION,
        input_size=backbone.spec.input_size,
        hparams=session.hparams(),
        fit=fit,
        backbone=backbone.spec,
        backbone_fingerprint=backbone.fingerprint,
        embedding_key=backbone.key,
        feature_extraction_seconds=extraction_seconds,
        extra={"embeddings_cached": cached, "embeddings_recomputed": recomputed, "extraction_engine": engine_used},
    )
    classifier = models.image_classifier(tf, backbone.features, head)
    results = [
        session.write_model(
            record, classifier, head=head, probabilities=probabilities, labels=test.labels, ids=test.ids
        )
    ]
    if config.fine_tune_layers > 0 and config.fine_tune_epochs > 0:
        results.append(_fine_tune(session, backbone, head, model_name))
    return TransferOutcome(results, extraction_seconds, cached, engine_used["engine"], recomputed)


def _extract(session: Session, backbone: Backbone) -> dict[str, Extraction]:
    """The vectors of the splits training needs, cached or computed now.

    The engine is chosen (and the backbone converted if need be) only when a split is not cached.
    """
    tf, config, size = session.tf, session.config, backbone.spec.input_size
    meta = {"backbone": backbone.spec.name, "backbone_fingerprint": backbone.fingerprint, "input_size": size}
    return {
        split.name: ensure_embeddings(
            tf,
            lambda images: backbone.engine().features(images),
            split,
            cache_dir=session.request.cache_dir,
            key=backbone.key,
            input_size=size,
            batch_size=max(config.batch_size, EXTRACTION_BATCH),
            meta=lambda: {**meta, **backbone.engine().describe()},
        )
        for split in _extracted_splits(session)
    }


def _extracted_splits(session: Session) -> list[SplitData]:
    """The splits whose vectors training needs: only test's when augmenting (the train images change)."""
    data = session.data
    return [data.test] if session.config.augment else [data.train, data.test]


def frozen_features(tf: Any, spec: BackboneSpec) -> tuple[Any, BackboneIdentity]:
    """The frozen backbone as a Keras feature model (images in [0, 1] -> vectors, input range mapped), and the
    identity its TFLite conversion is keyed by. Call it inside the precision policy and strategy scope wanted."""
    extractor = load_feature_extractor(spec, trainable=False)
    features = models.feature_model(tf, extractor, spec.input_size, spec.input_range)
    return features, BackboneIdentity(spec.name, backbone_fingerprint(spec), spec.input_size, spec.input_range)


def _load_backbone(session: Session, spec: BackboneSpec) -> Backbone:
    tf, data = session.tf, session.data
    with session.float32_policy(), session.strategy.scope():
        features, identity = frozen_features(tf, spec)
    fingerprint = identity.fingerprint
    key = embedding_key(
        fingerprint, spec.input_size, spec.input_range, {"train": data.train.fingerprint, "test": data.test.fingerprint}
    )
    LOG.info("backbone %s loaded (input %d px, embedding key %s)", spec.name, spec.input_size, key[:12])
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
    return Backbone(spec, fingerprint, key, features, engine)


def _train_head(
    session: Session, backbone: Backbone, name: str, train: Embeddings | None, test: Embeddings
) -> tuple[Any, FitOutcome]:
    """The head, trained on cached train vectors, or through the frozen backbone on augmented images."""
    tf, config = session.tf, session.config
    num_classes = len(session.data.class_names)
    session.seed_everything()
    with session.strategy.scope():
        head = build_head(tf, test.features.shape[1], num_classes)
        trained = head
        if config.augment:
            augmentation = models.build_augmentation(tf, config.seed)
            trained = models.image_classifier(tf, backbone.features, head, augmentation)
        models.compile_classifier(tf, trained, config.learning_rate)
    if config.augment:
        train_data = session.image_batches(session.data.train, backbone.spec.input_size, shuffle=True)
    elif train is not None and len(train.labels):
        train_data = (
            tf.data.Dataset.from_tensor_slices((train.features, train.labels))
            .shuffle(len(train.labels), seed=config.seed)
            .batch(config.batch_size)
            .prefetch(AUTOTUNE)
        )
    else:
        raise DataError("the train split has no examples")
    identity = {"mode": FEATURE_EXTRACTION, "embedding_key": backbone.key, "hparams": session.hparams()}
    fit = fit_resumable(
        tf,
        trained,
        train_data,
        label=name,
        epochs=config.epochs,
        checkpoint_dir=session.checkpoint_dir(name, identity),
        validate=lambda: _head_metrics(head, test),  # the cached test vectors: no backbone pass per epoch
    )
    return head, fit


def _head_metrics(head: Any, test: Embeddings) -> dict[str, float]:
    """Validation loss and accuracy of ``head`` on cached test vectors."""
    probabilities = np.asarray(head(test.features, training=False))
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
    identity = {"mode": FINE_TUNED, "embedding_key": base.key, "hparams": hparams}
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
