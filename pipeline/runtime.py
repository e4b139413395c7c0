"""Process-wide decisions made at call time, never at import time: TensorFlow set-up and cache locations."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import ModuleType

LOG = logging.getLogger(__name__)


def cache_root() -> Path:
    """Where hubpipe keeps data that outlives a run (sample data, built backbones, downloads).

    ``$HUBPIPE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/hubpipe``, else ``~/.cache/hubpipe``.
    """
    explicit = os.environ.get("HUBPIPE_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "hubpipe"


def import_tensorflow() -> ModuleType:
    """Imports TensorFlow configured for TF Hub: legacy Keras (tf-keras), quiet C++ logs.

    ``tensorflow_hub.KerasLayer`` does not work with Keras 3, so ``TF_USE_LEGACY_KERAS`` must be set before
    TensorFlow is first imported. Every module that needs TensorFlow calls this instead of importing it.
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if not tf.keras.Model.__module__.startswith("tf_keras."):  # tf_keras has no __version__ under tf.keras
        raise RuntimeError(
            "TensorFlow was imported before hubpipe could select legacy Keras; set TF_USE_LEGACY_KERAS=1"
        )
    return tf
