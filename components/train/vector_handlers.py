"""Beam RunInference model handlers: encoded image bytes in, one feature vector per image out.

One handler per extraction engine (see :mod:`.engine`): :class:`TensorFlowVectorHandler` runs the backbone as
hubpipe loads it for training (a TF Hub SavedModel through ``hub.KerasLayer``, with the input-range mapping of
:func:`~hubpipe.components.train.models.feature_model`), :class:`TFLiteVectorHandler` runs the converted
flatbuffer with the project's side-by-side XNNPACK interpreters. Beam's own ``TFModelHandlerTensor`` loads a
model with ``tf.keras.models.load_model``, which neither maps the input range nor loads a TF Hub feature-vector
SavedModel as hubpipe's backbone registry does, so both handlers are ``ModelHandler`` subclasses.

The model a handler loads takes *encoded* images and decodes and resizes them with
:func:`~hubpipe.components.train.inputs.decode_and_resize`, the function training and the serving model use,
so the vectors equal those of the in-process path. Decoding happens inside the model, a step of images at
a time in parallel threads while the backbone runs on the step before (as the in-process ``tf.data`` pipeline
overlaps them), and the batches RunInference forms carry encoded bytes (tens of KB an image) rather than
decoded float images.

RunInference loads the model once per worker process (its shared model) and forms the batches with
:meth:`ImageVectorHandler.batch_elements_kwargs`. When the runner executes in the driver's own process (the
local ``FnApiRunner``), the engine the train stage already loaded is used instead of loading it again
(:func:`register_loaded_engine`).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from apache_beam.ml.inference.base import ModelHandler

from hubpipe.components.backbones import BackboneSpec

LOG = logging.getLogger(__name__)

FeatureFn = Callable[[Any], np.ndarray]
#: Engines already loaded in this process, by :attr:`HandlerSpec.engine_key`.
_LOADED: dict[str, FeatureFn] = {}
METRICS_NAMESPACE = "hubpipe_extraction"
#: The Beam counter of images run through the model.
IMAGES_EMBEDDED = "images_embedded"
#: Images decoded ahead of the backbone, per step, inside one RunInference batch.
DECODE_STEP = 32


@dataclass(frozen=True)
class HandlerSpec:
    """What a worker needs to load an engine (picklable)."""

    backbone: BackboneSpec
    engine_key: str  # names the engine in the driver's process (backbone fingerprint + engine)
    batch_size: int  # images per RunInference batch


def register_loaded_engine(key: str, features: FeatureFn) -> None:
    """Makes an engine loaded by this process available to handlers that run in it."""
    _LOADED[key] = features


class _VectorModel:
    """Encoded images -> vectors: each step of :data:`DECODE_STEP` images is decoded (in parallel, by one traced
    function) while the engine runs on the step before; one call at a time."""

    def __init__(self, tf: Any, features: FeatureFn, size: int, threads: int):
        from hubpipe.components.train.inputs import decode_and_resize

        self.tf, self.features = tf, features

        def decode_step(encoded: Any) -> Any:
            images = tf.data.Dataset.from_tensor_slices(encoded).map(
                lambda one: decode_and_resize(tf, one, size), num_parallel_calls=max(2, threads), deterministic=True
            )
            return images.batch(tf.cast(tf.shape(encoded)[0], tf.int64)).get_single_element()

        self.decode = tf.function(decode_step, input_signature=[tf.TensorSpec([None], tf.string)])
        self.lock = threading.Lock()
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hubpipe-decode")

    def __call__(self, encoded: Sequence[bytes]) -> np.ndarray:
        steps = [list(encoded[start : start + DECODE_STEP]) for start in range(0, len(encoded), DECODE_STEP)]
        if not steps:
            return np.zeros((0, 0), np.float32)
        vectors = []
        with self.lock:  # RunInference shares one model between a worker's threads; TFLite is not thread-safe
            pending = self.pool.submit(self.decode, self.tf.constant(steps[0]))
            for following in [*steps[1:], None]:
                images = pending.result()
                if following is not None:  # decoded while the engine runs on this step
                    pending = self.pool.submit(self.decode, self.tf.constant(following))
                vectors.append(np.asarray(self.features(images), np.float32))
        return np.concatenate(vectors)


class ImageVectorHandler(ModelHandler[bytes, np.ndarray, _VectorModel]):
    """Shared by the engines: batching, metrics, and the in-process shortcut."""

    def __init__(self, spec: HandlerSpec):
        super().__init__()
        self.spec = spec

    def load_engine(self, tf: Any, threads: int) -> FeatureFn:
        raise NotImplementedError

    def load_model(self) -> _VectorModel:
        from hubpipe.components.train.threads import configure_tensorflow_threads, usable_cores
        from hubpipe.pipeline.core.runtime import import_tensorflow

        tf = import_tensorflow()
        threads = usable_cores()
        features = _LOADED.get(self.spec.engine_key)
        if features is None:
            configure_tensorflow_threads(tf, threads)
            features = self.load_engine(tf, threads)
            LOG.info("extraction worker %d: loaded %s (%s)", os.getpid(), self.spec.backbone.name, type(self).__name__)
        return _VectorModel(tf, features, self.spec.backbone.input_size, threads)

    def run_inference(
        self, batch: Sequence[bytes], model: _VectorModel, inference_args: dict[str, Any] | None = None
    ) -> Iterable[np.ndarray]:
        from apache_beam.metrics.metric import Metrics

        vectors = model(batch)
        Metrics.counter(METRICS_NAMESPACE, IMAGES_EMBEDDED).inc(len(batch))
        return list(vectors)

    def get_num_bytes(self, batch: Sequence[bytes]) -> int:
        return sum(len(encoded) for encoded in batch)

    def get_metrics_namespace(self) -> str:
        return METRICS_NAMESPACE

    def batch_elements_kwargs(self) -> dict[str, Any]:
        return {"min_batch_size": self.spec.batch_size, "max_batch_size": self.spec.batch_size}


class TensorFlowVectorHandler(ImageVectorHandler):
    """The backbone in TensorFlow, loaded by hubpipe's backbone registry (TF Hub handle, SavedModel, preset)."""

    def load_engine(self, tf: Any, threads: int) -> FeatureFn:
        from hubpipe.components.train.engine import frozen_features, tensorflow_features

        model, _ = frozen_features(tf, self.spec.backbone)
        return tensorflow_features(tf, model, self.spec.backbone.input_size)


class TFLiteVectorHandler(ImageVectorHandler):
    """The backbone's converted feature model (parity checked by the driver), in side-by-side interpreters.

    The handler names the cached flatbuffer (``model_path``, read by the worker: a path every worker reaches)
    rather than carrying it: Beam pickles and compresses a handler wherever the pipeline is serialised, and
    tens of MB there cost minutes on a loaded machine. Only a conversion that could not be cached travels as
    bytes (``model``).
    """

    def __init__(self, spec: HandlerSpec, model_path: str | None = None, model: bytes | None = None):
        super().__init__(spec)
        self.model_path, self.model = model_path, model

    def load_engine(self, tf: Any, threads: int) -> FeatureFn:
        from hubpipe.components.train.engine import TFLiteFeatures

        model = self.model
        if model is None:
            with tf.io.gfile.GFile(self.model_path, "rb") as handle:
                model = handle.read()
        return TFLiteFeatures(tf, model, threads)
