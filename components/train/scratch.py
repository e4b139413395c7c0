"""The from-scratch baseline: the classic course's small CNN on the same split, no transfer learning."""

from __future__ import annotations

import numpy as np

from hubpipe.components.train import models
from hubpipe.components.train.fitting import fit_resumable
from hubpipe.components.train.inputs import read_labels_and_ids
from hubpipe.components.train.naming import SCRATCH_MODEL
from hubpipe.components.train.session import ModelRecord, ModelResult, Session

FROM_SCRATCH = "from_scratch"


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
    train_data = session.image_batches(session.data.train, size, shuffle=True)
    test_data = session.image_batches(session.data.test, size, shuffle=False)
    fit = fit_resumable(
        tf,
        model,
        train_data,
        label=SCRATCH_MODEL,
        epochs=config.baseline_epochs,
        checkpoint_dir=session.checkpoint_dir(SCRATCH_MODEL, identity),
        validation_data=test_data,
    )
    probabilities = model.predict(test_data, verbose=0)
    labels, ids = read_labels_and_ids(tf, session.data.test)
    record = ModelRecord(
        name=SCRATCH_MODEL, kind="scratch", mode=FROM_SCRATCH, input_size=size, hparams=hparams, fit=fit
    )
    return session.write_model(
        record, model, head=None, probabilities=probabilities, labels=np.asarray(labels), ids=np.asarray(ids)
    )
