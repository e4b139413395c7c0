"""Feature-extraction throughput: the offline EfficientNet-Lite0 SavedModel next to Keras' EfficientNetB0.

Both run in one process on the same random batch (224 px, batch 32 by default): the exported
``efficientnet_lite0`` through ``hub.KerasLayer`` (built into the hubpipe cache on first use), and
``tf.keras.applications.EfficientNetB0(weights=None, include_top=False, pooling="avg")`` with random weights.
Each is wrapped in one ``tf.function``, warmed up, then timed batch by batch, alternating between the two so
that machine noise hits both alike. The last line is machine-readable::

    RESULT lite0_img_s=... effb0_img_s=... ratio=...

(``ratio`` is lite0 over EfficientNetB0.) Run: ``.venv/bin/python benchmarks/backbones.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from hubpipe.components.backbones import load_feature_extractor, resolve_backbone
from hubpipe.pipeline.core.runtime import import_tensorflow


def _models(tf: Any, size: int) -> dict[str, Callable[[Any], Any]]:
    lite0 = tf.keras.Sequential(
        [tf.keras.Input((size, size, 3)), load_feature_extractor(resolve_backbone("efficientnet_lite0"))]
    )
    effb0 = tf.keras.applications.EfficientNetB0(
        weights=None, include_top=False, pooling="avg", input_shape=(size, size, 3)
    )
    return {
        "lite0": tf.function(lambda images: lite0(images, training=False)),
        # Keras EfficientNet rescales [0, 255] inputs itself; lite0 takes [0, 1] (the TF Hub convention).
        "effb0": tf.function(lambda images: effb0(images * 255.0, training=False)),
    }


def _time_batch(model: Callable[[Any], Any], images: Any) -> float:
    start = time.perf_counter()
    np.asarray(model(images))  # waits for the result
    return time.perf_counter() - start


def alternating_rates(
    models: dict[str, Callable[[Any], Any]], images: Any, rounds: int, warmup: int = 1, consecutive: int = 1
) -> dict[str, float]:
    """Images per second of each model on the same batch, timed alternately: the batch size over the median time.

    Each round times ``consecutive`` calls of one model in a row (the time per call counts), as a stage calls
    one engine batch after batch.
    """
    for model in models.values():
        for _ in range(warmup):
            _time_batch(model, images)
    seconds: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            seconds[name].append(sum(_time_batch(model, images) for _ in range(consecutive)) / consecutive)
    batch = len(images)
    for name, times in seconds.items():
        print(
            f"{name}: {batch / statistics.median(times):.1f} img/s (per batch: {', '.join(f'{t:.2f}s' for t in times)})"
        )
    return {name: batch / statistics.median(times) for name, times in seconds.items()}


def run(batch: int, size: int, warmup: int, rounds: int) -> dict[str, float]:
    """Images per second of each model: the batch size over the median time per batch."""
    tf = import_tensorflow()
    images = tf.constant(np.random.default_rng(0).random((batch, size, size, 3), dtype=np.float32))
    return alternating_rates(_models(tf, size), images, rounds, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    result = run(args.batch, args.size, args.warmup, args.rounds)
    ratio = result["lite0"] / result["effb0"]
    print(f"RESULT lite0_img_s={result['lite0']:.1f} effb0_img_s={result['effb0']:.1f} ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
