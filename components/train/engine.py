"""The feature-extraction engine: TensorFlow, or the same backbone converted to TFLite (XNNPACK) on CPU.

``train.engine`` chooses: ``tensorflow`` always runs the Keras feature model; ``tflite`` and ``auto`` (on CPU)
convert the feature model (input rescaling included) once with ``tf.lite.TFLiteConverter`` and run it in
``tf.lite.Interpreter``, whose default XNNPACK delegate runs float models faster on x86 and ARM CPUs: one
single-threaded interpreter per usable core (:mod:`.threads`), side by side (:class:`TFLiteFeatures`). On a
GPU ``auto`` stays on TensorFlow.

A conversion costs time (4.4 s in the converter and 0.3 s of parity check for EfficientNet-Lite0 on a 2-core
AVX-512 machine) that fewer images than :data:`AUTO_MIN_IMAGES` do not repay: measured side by side on that
machine (``benchmarks/extraction.py``), the interpreters ran at 365 img/s against TensorFlow's 250 img/s, and
the train stage's extraction (decoding included) at 290-310 img/s: 0.7 to 1.2 ms less per image, so a
conversion is repaid after 4000 to 7000 images. So ``auto`` converts only for at least that many images to
extract, and uses a cached conversion whatever the count; ``tflite`` always converts.

A converted model is used only when it computes the same features: on a fixed probe batch the largest
absolute difference to TensorFlow must stay within :data:`PARITY_TOLERANCE` times the features' scale (their
largest absolute value, at least 1). A failed conversion or parity check falls back to TensorFlow with one log
line saying why (``tflite`` and ``auto`` alike; the engine used is recorded). Since the features are the same
within that tolerance, far below what moves a classifier head, both engines share one vector-store parity class
(:data:`ENGINE_PARITY_CLASS`): vectors stored by one engine are reused by the other.

Conversions are cached in hubpipe's model cache (``<cache root>/models/tflite/``, beside the built offline
backbone), keyed by the backbone fingerprint, the TensorFlow (converter) version, the input size and range,
with the parity measured at conversion time and the flatbuffer's SHA-256 in a JSON file beside the
``.tflite`` file; a cached flatbuffer that does not match its digest is converted again.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import queue
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hubpipe.components.backbones import BackboneSpec, backbone_fingerprint, load_feature_extractor
from hubpipe.components.common.checked_files import digest_problem, write_durably
from hubpipe.components.common.text import first_line
from hubpipe.components.train import models
from hubpipe.pipeline.core.artifacts import read_json, stable_hash
from hubpipe.pipeline.core.locking import TMP_PATTERN, remove_dead_tmp

LOG = logging.getLogger(__name__)

TENSORFLOW, TFLITE, AUTO = "tensorflow", "tflite", "auto"
#: The vector store's engine parity class of both engines: float32 vectors, TFLite's within
#: :data:`PARITY_TOLERANCE` of TensorFlow's (checked before a conversion is used), so they share stored vectors.
#: An engine whose vectors differ more (a quantized model) would need a class of its own.
ENGINE_PARITY_CLASS = "float32"
#: Largest allowed |TFLite - TF| on the probe batch, relative to max(1, largest |TF feature|).
PARITY_TOLERANCE = 1e-4
PROBE_IMAGES = 8
#: Images per interpreter call. XNNPACK runs a few images at a time faster per image than a large batch
#: (its working set stays in the cores' caches): on a 2-core AVX-512 machine EfficientNet-Lite0 ran at
#: 345-365 img/s in groups of 1 to 4 and 287 img/s in batches of 128 (TensorFlow: 256 img/s at 32 or 128).
INVOKE_BATCH = 4
#: At most this many interpreters side by side (each holds its own copy of the weights and activations, about
#: 40 MB for EfficientNet-Lite0); with more usable cores than that, each interpreter gets several threads.
MAX_INTERPRETERS = 4
PROBE_SEED = 20261204
TFLITE_DIR = "tflite"
#: ``auto`` converts (when no conversion is cached) only for at least this many images to extract.
AUTO_MIN_IMAGES = 5000
#: Bump when the conversion or the parity check changes.
CONVERSION_VERSION = 1

FeatureFn = Callable[[Any], np.ndarray]


@dataclass(frozen=True)
class Engine:
    """The engine that extracts a backbone's features, and why."""

    name: str  # "tensorflow" or "tflite"
    features: FeatureFn  # float32 images [b, s, s, 3] in [0, 1] -> float32 vectors [b, d]
    reason: str  # one phrase: why this engine
    max_abs_diff: float | None = None  # TFLite vs TF on the probe batch, when converted
    model_path: str | None = None  # the cached flatbuffer a TFLite engine runs (None: not cached)

    def describe(self) -> dict[str, Any]:
        """What model.json and the run report record."""
        return {"engine": self.name, "reason": self.reason, "max_abs_diff": self.max_abs_diff}


def wants_tflite(setting: str, device: str) -> bool:
    """Whether to try TFLite for a ``train.engine`` setting on a device ("CPU" or "GPU")."""
    if setting == TENSORFLOW:
        return False
    if setting == TFLITE:
        return True
    return device == "CPU"


def _inference_function(tf: Any, feature_model: Any, size: int) -> Any:
    """The feature model in inference mode as a ``tf.function`` on float32 batches of any size."""
    return tf.function(
        lambda images: feature_model(images, training=False),
        input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)],
    )


def tensorflow_features(tf: Any, feature_model: Any, size: int) -> FeatureFn:
    """The Keras feature model as one traced function returning numpy vectors."""
    call = _inference_function(tf, feature_model, size)
    return lambda images: np.asarray(call(images), dtype=np.float32)


def conversion_key(fingerprint: str, tf_version: str, size: int, input_range: tuple[float, float]) -> str:
    """The cache key of a backbone's converted feature model."""
    return stable_hash(
        {
            "version": CONVERSION_VERSION,
            "backbone": fingerprint,
            "converter": tf_version,
            "input_size": size,
            "range": list(input_range),
        }
    )[:32]


def convert(tf: Any, feature_model: Any, size: int) -> bytes:
    """The feature model as a float32 TFLite flatbuffer with a dynamic batch dimension."""
    call = _inference_function(tf, feature_model, size).get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([call], feature_model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no TF ops: XNNPACK-friendly
    return converter.convert()


def probe_batch(size: int) -> np.ndarray:
    """A fixed batch of smooth random images in [0, 1] (the same on every machine)."""
    rng = np.random.default_rng(PROBE_SEED)
    coarse = rng.random((PROBE_IMAGES, 8, 8, 3), dtype=np.float32)
    repeat = -(-size // 8)
    images = np.repeat(np.repeat(coarse, repeat, axis=1), repeat, axis=2)[:, :size, :size]
    noise = rng.normal(0.0, 0.05, images.shape).astype(np.float32)
    return np.clip(images + noise, 0.0, 1.0)


def parity(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """``(max abs difference, allowed difference)`` of candidate features against the reference."""
    if reference.shape != candidate.shape:
        return float("inf"), 0.0
    scale = max(1.0, float(np.max(np.abs(reference))) if reference.size else 1.0)
    return float(np.max(np.abs(reference - candidate))) if reference.size else 0.0, PARITY_TOLERANCE * scale


class TFLiteFeatures:
    """A converted feature model run by ``threads`` one-thread ``tf.lite.Interpreter`` s (XNNPACK) side by side
    (at most :data:`MAX_INTERPRETERS`, sharing out the ``threads`` when there are more).

    Whatever the size of the batch it is given, images go through :data:`INVOKE_BATCH` at a time (the last
    group padded with blank images whose rows are dropped), so each interpreter is planned once. Each
    interpreter takes the next group as soon as it is free, rather than all of them splitting every operator
    between threads: on a shared machine a thread that loses its core then delays only its own groups, where
    a multi-threaded interpreter's other threads wait for it at every operator (``side_by_side=False``, one
    interpreter with ``threads`` threads, is kept for comparison, see ``benchmarks/extraction.py``). Not
    thread-safe itself.
    """

    def __init__(self, tf: Any, model: bytes, threads: int, *, side_by_side: bool = True):
        self.model = model  # the flatbuffer, e.g. for another interpreter
        threads = max(1, threads)
        count = min(threads, MAX_INTERPRETERS) if side_by_side else 1
        # Threads shared out as evenly as possible: 6 cores -> 4 interpreters with 2, 2, 1 and 1 threads.
        self._interpreters = [
            _Interpreter(tf, model, threads // count + (number < threads % count)) for number in range(count)
        ]

    def __call__(self, images: Any) -> np.ndarray:
        batch = np.asarray(images, dtype=np.float32)
        count = len(batch)
        padded = -(-count // INVOKE_BATCH) * INVOKE_BATCH
        if padded != count:
            batch = np.concatenate([batch, np.zeros((padded - count, *batch.shape[1:]), np.float32)])
        starts: queue.SimpleQueue[int] = queue.SimpleQueue()
        for start in range(0, padded, INVOKE_BATCH):
            starts.put(start)
        rows: dict[int, np.ndarray] = {}

        def work(interpreter: _Interpreter) -> None:
            while True:
                try:
                    start = starts.get_nowait()
                except queue.Empty:
                    return
                rows[start] = interpreter(batch[start : start + INVOKE_BATCH])

        first, *others = self._interpreters[: max(1, padded // INVOKE_BATCH)]
        with concurrent.futures.ThreadPoolExecutor(max(1, len(others))) as pool:
            running = [pool.submit(work, interpreter) for interpreter in others]
            work(first)
            for future in running:
                future.result()
        if not rows:
            return np.zeros((0, first.width), np.float32)
        return np.concatenate([rows[start] for start in sorted(rows)])[:count]


class _Interpreter:
    """One interpreter, planned for the shape of the first group it runs."""

    def __init__(self, tf: Any, model: bytes, threads: int):
        self.threads = threads
        self.interpreter = tf.lite.Interpreter(model_content=model, num_threads=threads)
        self._input = self.interpreter.get_input_details()[0]["index"]
        self._output = self.interpreter.get_output_details()[0]["index"]
        self._shape: tuple[int, ...] | None = None
        self.width = int(self.interpreter.get_output_details()[0]["shape"][-1])

    def __call__(self, group: np.ndarray) -> np.ndarray:
        if group.shape != self._shape:  # the first call (or images of another size): plan the interpreter
            self.interpreter.resize_tensor_input(self._input, list(group.shape), strict=False)
            self.interpreter.allocate_tensors()
            self._shape = group.shape
        self.interpreter.set_tensor(self._input, np.ascontiguousarray(group))
        self.interpreter.invoke()  # releases the GIL: interpreters run in parallel
        return np.array(self.interpreter.get_tensor(self._output), dtype=np.float32)


@dataclass(frozen=True)
class BackboneIdentity:
    """What a conversion is keyed by."""

    name: str
    fingerprint: str
    input_size: int
    input_range: tuple[float, float]


def conversion_dir(cache_root: Path) -> Path:
    """Where TFLite conversions are kept in hubpipe's cache folder ``cache_root``, shared by every run."""
    return cache_root / "models" / TFLITE_DIR


def _cached_conversion(folder: Path, key: str) -> tuple[bytes, float] | None:
    """The cached flatbuffer and its recorded parity, when both are there, the parity passed and the flatbuffer
    is the one the parity was measured on (its SHA-256 is in the record)."""
    path = folder / f"{key}.tflite"
    try:
        record = read_json(folder / f"{key}.json")
        diff = float(record["max_abs_diff"])
        passed = record.get("passed") is True
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not passed:
        return None
    problem = digest_problem(path, record.get("sha256"))
    if problem:
        LOG.info("the cached TFLite conversion %s is damaged or incomplete (%s): converting again", path, problem)
        return None
    try:
        return path.read_bytes(), diff
    except OSError:
        return None


def _store_conversion(folder: Path, key: str, model: bytes, record: dict[str, Any]) -> None:
    """Writes the flatbuffer and then its parity record with the flatbuffer's SHA-256, each through an owned
    temporary file and a rename (:func:`~hubpipe.components.common.checked_files.write_durably`); logs when it
    cannot.

    The folder is shared by every process on the machine (or the volume), so a temporary file is created only
    while its writer holds its owner lock (:func:`~hubpipe.pipeline.core.locking.owned_tmp`), and the temporary
    files of killed writers are removed here first, once their owners are dead.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        remove_dead_tmp(folder, TMP_PATTERN)
        digest = write_durably(folder / f"{key}.tflite", lambda handle: handle.write(model))
        content = json.dumps({**record, "sha256": digest}, indent=2).encode()
        write_durably(folder / f"{key}.json", lambda handle: handle.write(content))
    except OSError as exc:
        LOG.info("the TFLite conversion is not cached (%s): it is converted again next run", exc.strerror or exc)


def _convert_and_check(tf: Any, feature_model: Any, backbone: BackboneIdentity, reference: FeatureFn, threads: int):
    """Converts and measures parity; returns ``(model, its interpreter, max_abs_diff, allowed)``."""
    model = convert(tf, feature_model, backbone.input_size)
    probe = probe_batch(backbone.input_size)
    converted = TFLiteFeatures(tf, model, threads)
    diff, allowed = parity(reference(probe), converted(probe))
    return model, converted, diff, allowed


def select_engine(
    tf: Any,
    setting: str,
    device: str,
    feature_model: Any,
    backbone: BackboneIdentity,
    *,
    conversions: Path,
    threads: int,
    images: int = AUTO_MIN_IMAGES,
) -> Engine:
    """The engine for a backbone: TFLite when asked (or ``auto`` on CPU) and it converts with parity, else TF.

    ``conversions`` is the folder of cached conversions (:func:`conversion_dir`). ``images`` is how many images
    will be extracted: with fewer than :data:`AUTO_MIN_IMAGES`, ``auto`` uses a cached conversion but does not
    convert.
    """
    reference = tensorflow_features(tf, feature_model, backbone.input_size)
    if not wants_tflite(setting, device):
        reason = "train.engine=tensorflow" if setting == TENSORFLOW else f"{device}: TensorFlow"
        return Engine(TENSORFLOW, reference, reason)
    key = conversion_key(backbone.fingerprint, tf.__version__, backbone.input_size, backbone.input_range)
    folder = conversions
    cached = _cached_conversion(folder, key)
    if cached is not None:
        model, diff = cached
        path = str(folder / f"{key}.tflite")
        return Engine(TFLITE, TFLiteFeatures(tf, model, threads), "converted (cached), parity checked", diff, path)
    if setting == AUTO and images < AUTO_MIN_IMAGES:
        LOG.info("%s: %d images do not repay a TFLite conversion; extracting with TensorFlow", backbone.name, images)
        return Engine(TENSORFLOW, reference, f"auto: fewer than {AUTO_MIN_IMAGES} images, no cached conversion")
    try:
        model, converted, diff, allowed = _convert_and_check(tf, feature_model, backbone, reference, threads)
    except Exception as exc:  # the converter raises ConverterError, ValueError, RuntimeError...
        LOG.warning(
            "%s: TFLite conversion failed (%s); extracting with TensorFlow", backbone.name, first_line(exc, 200)
        )
        return Engine(TENSORFLOW, reference, "TFLite conversion failed")
    record = {
        "backbone": backbone.name,
        "max_abs_diff": diff,
        "allowed": allowed,
        "passed": diff <= allowed,
    }
    if diff > allowed:
        LOG.warning(
            "%s: TFLite features differ from TensorFlow's by %.3g (allowed %.3g); extracting with TensorFlow",
            backbone.name,
            diff,
            allowed,
        )
        return Engine(TENSORFLOW, reference, "TFLite parity check failed", diff)
    _store_conversion(folder, key, model, record)
    LOG.info("%s: converted to TFLite (max abs difference %.3g, allowed %.3g)", backbone.name, diff, allowed)
    path = folder / f"{key}.tflite"
    return Engine(TFLITE, converted, "converted, parity checked", diff, str(path) if path.is_file() else None)


def frozen_features(tf: Any, spec: BackboneSpec) -> tuple[Any, BackboneIdentity]:
    """The frozen backbone as a Keras feature model (images in [0, 1] -> vectors, input range mapped), and the
    identity its TFLite conversion is keyed by. Call it inside the precision policy and strategy scope wanted."""
    extractor = load_feature_extractor(spec, trainable=False)
    features = models.feature_model(tf, extractor, spec.input_size, spec.input_range)
    return features, BackboneIdentity(spec.name, backbone_fingerprint(spec), spec.input_size, spec.input_range)
