"""Process-wide decisions made at call time, never at import time: TensorFlow and Beam set-up.

The cache folder's lookup is :mod:`hubpipe.pipeline.core.cache_root`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from types import ModuleType
from typing import Any

LOG = logging.getLogger(__name__)


#: TensorFlow's switch for its oneDNN CPU kernels, read when TensorFlow first needs it.
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"


def import_tensorflow() -> ModuleType:
    """Imports TensorFlow configured for TF Hub: legacy Keras (tf-keras), quiet C++ logs, no AutoGraph on tf-keras,
    and oneDNN CPU kernels on.

    ``tensorflow_hub.KerasLayer`` does not work with Keras 3, so ``TF_USE_LEGACY_KERAS`` must be set before
    TensorFlow is first imported. Every module that needs TensorFlow calls this instead of importing it.

    TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 VNNI, BF16 or AMX; on an AVX2
    CPU it runs its own kernels, measured here (``benchmarks/cold_run.py``) about 3x slower for the from-scratch
    CNN's training step and for feature extraction. ``TF_ENABLE_ONEDNN_OPTS=0`` in the environment turns them
    off. oneDNN sums in another order, so the last digits of results differ from TensorFlow's own kernels; the
    train stage records which ran (:func:`onednn_enabled`).
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault(ONEDNN_ENV, "1")
    import tensorflow as tf

    if not tf.keras.Model.__module__.startswith("tf_keras."):  # tf_keras has no __version__ under tf.keras
        raise RuntimeError(
            "TensorFlow was imported before hubpipe could select legacy Keras; set TF_USE_LEGACY_KERAS=1"
        )
    _skip_autograph_for_tf_keras()
    return tf


def onednn_enabled() -> bool | None:
    """Whether this process's TensorFlow runs its oneDNN CPU kernels; None when TensorFlow cannot say."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # TensorFlow moved its private helper
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def import_tfdv() -> ModuleType:
    """Imports tensorflow-data-validation after :func:`import_tensorflow`.

    TFDV imports TensorFlow itself: when it came first in a process (``hubpipe run`` with ingest cached), the
    legacy-Keras switch was not set yet and the train stage later failed on a Keras 3 precision policy.
    """
    import_tensorflow()
    import tensorflow_data_validation as tfdv

    return tfdv


def _skip_autograph_for_tf_keras() -> None:
    """Tells AutoGraph not to convert tf-keras' own code, as it already does not convert ``keras``.

    tf-keras is Keras 2 under another package name; its internals are written for graph mode without AutoGraph,
    but AutoGraph's rules list only ``keras``, so the first ``fit`` of every process converted hundreds of Keras
    functions (about 10 s here). Prepending a rule is what TensorFlow's own AutoGraph tests do; idempotent.
    """
    from tensorflow.python.autograph.core import config as autograph_config

    rules = autograph_config.CONVERSION_RULES
    if not any(isinstance(rule, autograph_config.DoNotConvert) and rule.matches("tf_keras") for rule in rules):
        autograph_config.CONVERSION_RULES = (autograph_config.DoNotConvert("tf_keras"), *rules)


#: The Beam runner of local runs when ``--beam-arg`` names none: the in-process batch engine that Beam's
#: DirectRunner itself uses for batch pipelines. (Beam 2.72's ``DirectRunner`` first tries to download the
#: Prism runner binary from GitHub at run time, which hangs or fails where egress is blocked.)
LOCAL_BEAM_RUNNER = "FnApiRunner"


def beam_pipeline_options(beam_args: Sequence[str]) -> Any:
    """Beam ``PipelineOptions`` from the pass-through arguments, with the local runner unless they name one."""
    from apache_beam.options.pipeline_options import PipelineOptions

    args = list(beam_args)
    if not any(arg == "--runner" or arg.startswith("--runner=") for arg in args):
        args.append(f"--runner={LOCAL_BEAM_RUNNER}")
    return PipelineOptions(args)
