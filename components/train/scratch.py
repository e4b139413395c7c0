"""The from-scratch baseline: the classic course's small CNN on the same split, no transfer learning."""

from __future__ import annotations

from hubpipe.components.train import models
from hubpipe.components.train.layout import FROM_SCRATCH, SCRATCH
from hubpipe.components.train.naming import SCRATCH_MODEL
from hubpipe.components.train.session import ModelRecord, ModelResult, Session


def train_scratch(session: Session) -> ModelResult:
    """Trains the baseline CNN on ``image_size`` px images for ``train.baseline_epochs`` epochs and writes it."""
    tf, config, size = session.tf, session.config, session.request.image_size
    session.seed_everything()
    with session.strategy.scope():
        model = models.build_scratch_cnn(tf, size, len(session.data.class_names))
        models.compile_classifier(tf, model, config.learning_rate)
    hparams = session.hparams(epochs=config.baseline_epochs, augment=False)
    identity = {
        "mode": FROM_SCRATCH,
        "data": [session.data.train.fingerprint, session.data.test.fingerprint],
        "image_size": size,
        "hparams": hparams,
    }
    fit, probabilities = session.fit_on_images(
        model, SCRATCH_MODEL, size, epochs=config.baseline_epochs, identity=identity
    )
    record = ModelRecord(name=SCRATCH_MODEL, kind=SCRATCH, mode=FROM_SCRATCH, input_size=size, hparams=hparams, fit=fit)
    data = session.data
    return session.write_model(
        record, model, head=None, probabilities=probabilities, labels=data.test_labels, ids=data.test_ids
    )
