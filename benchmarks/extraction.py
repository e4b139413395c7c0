"""Feature-extraction throughput of the train stage's engines: TensorFlow, TFLite (XNNPACK), and the pipeline.

In one process, on the offline EfficientNet-Lite0 (built into the hubpipe cache on first use):

* ``tf_img_s``: the Keras feature model (input rescaling included) in one ``tf.function``, the engine
  ``train.engine=tensorflow`` uses;
* ``tflite_img_s``: the same model converted to TFLite (:mod:`hubpipe.components.train.engine`, cached
  conversion) as the engine runs it: one single-threaded ``tf.lite.Interpreter`` per usable core, side by
  side on groups of 4 images;
* ``tflite_mt_img_s``: one interpreter with one thread per usable core on the same groups (XNNPACK splits
  each operator between its threads), the engine's previous design;
* both timed on the same images (``--batch`` 128, the stage's extraction batch), ``--consecutive`` batches of
  one engine in a row (as the stage calls one engine batch after batch), alternating between engines for
  ``--rounds`` rounds so that load from other processes hits all alike; each rate is the batch size over the
  median time per batch;
* ``pipeline_img_s``: the train stage's end-to-end extraction with the engine ``auto`` picks (TFRecords of the
  embedded sample dataset read, decoded, resized and batched by tf.data while the engine runs), the fastest of
  ``--pipeline-rounds`` passes over both splits;
* ``max_abs_diff``: the largest |TFLite - TF| feature difference over those real images;
* ``tflite1_img_s``: one interpreter with one thread, timed in the same alternation;
* ``busy_*``: the same rates again while ``--busy`` other processes (1 by default) spin on the CPU, as on a
  shared machine. A multi-threaded interpreter's threads wait for each other at every operator, so when one
  loses its core all wait; side-by-side interpreters lose only that interpreter's share;
* ``engine_share``: the part of the pipeline's time spent inside the engine; the rest is decoding that the
  prefetch did not hide (decoding and the engine share the same cores).

The last line is machine-readable::

    RESULT tf_img_s=... tflite_img_s=... pipeline_img_s=... max_abs_diff=... tflite_vs_tf=... pipeline_vs_engine=...
        tflite_mt_img_s=... tflite1_img_s=... engine_share=... busy_tf_img_s=... busy_tflite_img_s=...
        busy_tflite_mt_img_s=... load=...

``load`` is the 1-minute load average before and after (other work on a shared machine moves every figure).

Run: ``.venv/bin/python benchmarks/extraction.py [--rounds 4] [--consecutive 3] [--pipeline-rounds 2] [--busy 1]``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from backbones import alternating_rates
from train_vs_fit import write_examples

from hubpipe.components.backbones import resolve_backbone
from hubpipe.components.train import engine
from hubpipe.components.train.engine import frozen_features
from hubpipe.components.train.inputs import image_dataset, load_split
from hubpipe.components.train.threads import configure_tensorflow_threads, usable_cores
from hubpipe.components.train.transfer import EXTRACTION_BATCH
from hubpipe.data.sample import SampleSpec, ensure_sample_dataset
from hubpipe.pipeline.core.cache_root import cache_root
from hubpipe.pipeline.core.runtime import import_tensorflow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=EXTRACTION_BATCH)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--consecutive", type=int, default=3, help="batches per engine in a row in each round")
    parser.add_argument("--pipeline-rounds", type=int, default=2)
    parser.add_argument("--busy", type=int, default=1, help="spinning processes during the busy_* measurement")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("hubpipe").setLevel(logging.INFO)
    tf = import_tensorflow()
    cores = usable_cores()
    configure_tensorflow_threads(tf, cores)
    spec = resolve_backbone("efficientnet_lite0")
    features, identity = frozen_features(tf, spec)
    converted = engine.select_engine(
        tf, "tflite", "CPU", features, identity, conversions=engine.conversion_dir(cache_root()), threads=cores
    )
    assert converted.name == engine.TFLITE, converted.reason
    reference = engine.tensorflow_features(tf, features, spec.input_size)
    dataset = ensure_sample_dataset(cache_root(), SampleSpec(0, 75, 25))
    with tempfile.TemporaryDirectory(prefix="hubpipe-extraction-") as tmp:
        ingest = Path(tmp) / "ingest"
        write_examples(tf, dataset, ingest)
        splits = [load_split(ingest, name) for name in ("train", "test")]
        batch = next(iter(image_dataset(tf, splits[0], spec.input_size).batch(args.batch)))[0].numpy()
        engines = {
            "tensorflow": reference,
            "tflite": converted.features,
            "tflite_mt": engine.TFLiteFeatures(tf, converted.features.model, cores, side_by_side=False),
            "tflite1": engine.TFLiteFeatures(tf, converted.features.model, 1),
        }
        rates = alternating_rates(engines, batch, args.rounds, consecutive=args.consecutive)
        diff = float(np.max(np.abs(reference(batch) - converted.features(batch))))
        pipeline, share = max(
            _pipeline_rate(tf, converted.features, splits, spec.input_size, args.batch)
            for _ in range(args.pipeline_rounds)
        )
        busy = {name: engines[name] for name in ("tensorflow", "tflite", "tflite_mt")}
        with _spinning(args.busy):
            print(f"with {args.busy} spinning process(es):")
            busy_rates = alternating_rates(busy, batch, args.rounds, consecutive=args.consecutive)
    print(f"cores {cores}; pipeline (decode included, tflite): {pipeline:.1f} img/s, {share:.0%} of it in the engine")
    print(
        f"RESULT tf_img_s={rates['tensorflow']:.1f} tflite_img_s={rates['tflite']:.1f} pipeline_img_s={pipeline:.1f} "
        f"max_abs_diff={diff:.2e} tflite_vs_tf={rates['tflite'] / rates['tensorflow']:.2f} "
        f"pipeline_vs_engine={pipeline / rates['tflite']:.2f} tflite_mt_img_s={rates['tflite_mt']:.1f} "
        f"tflite1_img_s={rates['tflite1']:.1f} engine_share={share:.2f} "
        f"busy_tf_img_s={busy_rates['tensorflow']:.1f} busy_tflite_img_s={busy_rates['tflite']:.1f} "
        f"busy_tflite_mt_img_s={busy_rates['tflite_mt']:.1f} load={load_before:.1f}/{os.getloadavg()[0]:.1f}"
    )


@contextlib.contextmanager
def _spinning(count: int) -> Iterator[None]:
    """``count`` processes spinning on the CPU while the block runs."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(1.0)  # let them start
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def _pipeline_rate(
    tf: Any, features: Callable[[Any], np.ndarray], splits: list, size: int, batch: int
) -> tuple[float, float]:
    """Images per second of the stage's extraction over ``splits``, and the share of its time inside ``features``."""
    inside = 0.0

    def timed(images: Any) -> np.ndarray:
        nonlocal inside
        started = time.perf_counter()
        vectors = features(images)
        inside += time.perf_counter() - started
        return vectors

    started, count = time.perf_counter(), 0
    for split in splits:  # what the train stage's extraction did in process before the Beam job
        for images, _ in image_dataset(tf, split, size).batch(batch).prefetch(2):
            count += len(timed(images))
    seconds = time.perf_counter() - started
    return count / seconds, inside / seconds


if __name__ == "__main__":
    main()
