"""How the heavy part scales: ingest + extraction + head training per 1000 images at 1k and at >= 30k images,
the train stage's peak memory with 10k and 1M stored vectors, incremental extraction, and the Beam extraction
against the in-process one.

* ``s_per_kimg_small`` / ``s_per_kimg_large``: ``hubpipe run --until train --set train.baseline=false`` on the
  generated sample dataset at ``--small`` and ``--large`` images (a fresh run folder and an empty vector store
  each), the ingest and train stages' durations from run.json (extraction and head training are the train
  stage), per 1000 images;
* ``incremental_ratio``: the extraction (as the train stage runs it: index, Beam job, index again) over the
  large dataset's examples plus 10% more images per class (their examples added as new TFRecord files beside
  the large run's, rather than ingesting 33k images again), into the large run's vector store, over the
  large run's extraction seconds (the train stage's ``feature_extraction_seconds``);
* ``beam_vs_inprocess``: on the large dataset's examples, in one process with the same engine (what
  ``train.engine=auto`` picks there), images per second of the Beam extraction job (into an empty store) over
  those of the in-process ``tf.data`` loop the train stage used before (decode in parallel, engine on batches
  of 128), timed just before it;
* ``train_rss_mb_10k`` / ``train_rss_mb_1m``: the peak RSS (``ru_maxrss``) of a child process that runs the
  train stage's core (EfficientNet-Lite0, ``train.baseline=false``, one epoch, batch 256) over an ingest folder
  of that many train examples (tiny placeholder images: the vectors are all in the store already, written
  directly as shards of random 1280-dimension vectors keyed by the examples' content keys) and 1000 test
  examples.

The last line is machine-readable::

    RESULT images_small=... images_large=... s_per_kimg_small=... s_per_kimg_large=... train_rss_mb_10k=...
           train_rss_mb_1m=... incremental_ratio=... beam_vs_inprocess=...

Run: ``.venv/bin/python benchmarks/scale.py [--large 30000] [--rss-large 1000000] [--work DIR]`` (about 5 GB
of disk for the 1M store; the work folder is removed at the end unless ``--keep``).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HUBPIPE = [sys.executable, "-m", "hubpipe.pipeline.cli"]
CLASSES = 10
BACKBONE = "efficientnet_lite0"
TEST_EXAMPLES = 1000


def _render(job: tuple[Path, str, str, int]) -> None:
    from hubpipe.data.sample import render_jpeg

    path, split, label, index = job
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(render_jpeg(0, split, label, index))
    tmp.rename(path)


def generate(folder: Path, images: int, like: Path | None = None) -> Path:
    """The sample dataset (seed 0, as ``hubpipe data sample``) with ``images`` images in all (75% train, 25%
    test), file names as the generator gives them. Resumable: only missing files are rendered (each written
    whole), in two processes; with ``like``, that dataset's files are linked rather than rendered again (the
    same seed gives the same bytes for the same index)."""
    import multiprocessing

    from hubpipe.data.sample import CLASSES as SAMPLE_CLASSES

    per_class = images // len(SAMPLE_CLASSES)
    train = per_class * 3 // 4
    jobs = []
    for split, count in (("train", train), ("test", per_class - train)):
        for label in SAMPLE_CLASSES:
            (folder / split / label).mkdir(parents=True, exist_ok=True)
            for index in range(count):
                path = folder / split / label / f"{label}_{split}_{index:04d}.jpg"
                known = like / split / label / path.name if like is not None else None
                if not path.exists() and known is not None and known.exists():
                    os.link(known, path)
                if not path.exists():
                    jobs.append((path, split, label, index))
    with multiprocessing.Pool(2) as pool:
        pool.map(_render, jobs, chunksize=64)
    return folder


def run_until_train(work: Path, name: str, data: Path, store: Path) -> dict:
    """``hubpipe run --until train`` (no baseline) into ``work/name``; returns run.json's stages by name."""
    output = work / name
    subprocess.run(
        [
            *HUBPIPE,
            "run",
            "--output",
            str(output),
            "--data",
            str(data),
            "--until",
            "train",
            "--set",
            "train.baseline=false",
            "--set",
            f"train.vector_store={store}",
            "--set",
            f"publish.root={work / 'published'}",
        ],
        check=True,
        capture_output=True,
    )
    stages = json.loads((output / "run.json").read_text())["stages"]
    return {stage["name"]: stage for stage in stages}


def per_kimg(stages: dict, images: int) -> float:
    seconds = float(stages["ingest"]["duration_s"]) + float(stages["train"]["duration_s"])
    return seconds / images * 1000


def extraction_seconds(stages: dict) -> float:
    return float(next(iter(stages["train"]["results"]["feature_extraction_seconds"].values())))


def count_images(folder: Path) -> int:
    return sum(1 for path in folder.rglob("*.jpg"))


# --- Beam against in process ------------------------------------------------------------------------------


def load_engine() -> tuple:
    """TensorFlow, the backbone's spec and identity, and the engine ``train.engine=auto`` picks for 30k images."""
    from hubpipe.components.backbones import resolve_backbone
    from hubpipe.components.train.engine import AUTO_MIN_IMAGES, conversion_dir, frozen_features, select_engine
    from hubpipe.components.train.threads import configure_tensorflow_threads, usable_cores
    from hubpipe.pipeline.core.cache_root import cache_root
    from hubpipe.pipeline.core.runtime import import_tensorflow

    tf = import_tensorflow()
    configure_tensorflow_threads(tf, usable_cores())
    spec = resolve_backbone(BACKBONE)
    model, identity = frozen_features(tf, spec)
    engine = select_engine(
        tf,
        "auto",
        "CPU",
        model,
        identity,
        conversions=conversion_dir(cache_root()),
        threads=usable_cores(),
        images=AUTO_MIN_IMAGES,
    )
    print(f"engine: {engine.name} ({engine.reason})", flush=True)
    return tf, spec, identity, engine


def embed(loaded: tuple, ingest_dir: Path, store_folder: str) -> tuple[float, int]:
    """(seconds, vectors computed) of the Beam extraction of ``ingest_dir``'s examples into a space folder."""
    from hubpipe.components.common.split_vectors import read_split_keys
    from hubpipe.components.train.extraction import ExtractionJob, ensure_vectors
    from hubpipe.components.train.inputs import load_split
    from hubpipe.components.train.transfer import EXTRACTION_BATCH, vector_handler

    tf, spec, identity, engine = loaded
    splits = [load_split(ingest_dir, name) for name in ("train", "test")]
    keys = [read_split_keys(tf, list(split.files)).keys for split in splits]
    handler = vector_handler(engine, spec, identity.fingerprint, EXTRACTION_BATCH)
    job = ExtractionJob([path for split in splits for path in split.files], store_folder, lambda: handler)
    run = ensure_vectors(job, keys)
    return run.seconds, run.computed


def space_folder(loaded: tuple, store: Path) -> str:
    from hubpipe.components.common.vector_store import VectorSpace, space_dir
    from hubpipe.components.train.engine import ENGINE_PARITY_CLASS
    from hubpipe.components.train.inputs import RESIZE_METHOD

    _, spec, identity, _ = loaded
    space = VectorSpace(
        identity.fingerprint, spec.input_size, RESIZE_METHOD, tuple(spec.input_range), ENGINE_PARITY_CLASS
    )
    return space_dir(str(store), space)


def grown_ingest(large_ingest: Path, extra: Path, out: Path) -> tuple[Path, int]:
    """An ingest folder of the large dataset's examples (linked) plus the ``extra`` images' as new files."""
    from train_vs_fit import jpeg_example  # a sibling script (benchmarks/ is on sys.path when run)

    from hubpipe.components.common import features
    from hubpipe.pipeline.core.runtime import import_tensorflow

    tf = import_tensorflow()
    (out / features.EXAMPLES_DIR).mkdir(parents=True)
    for path in (large_ingest / features.EXAMPLES_DIR).glob(f"*{features.TFRECORD_SUFFIX}"):
        os.link(path, out / features.EXAMPLES_DIR / path.name)
    labels = features.read_labels(large_ingest)
    features.write_labels(out, labels)
    added = 0
    for split in features.SPLITS:
        target = out / features.EXAMPLES_DIR / f"{split}-extra{features.TFRECORD_SUFFIX}"
        with tf.io.TFRecordWriter(str(target)) as writer:
            for image in sorted((extra / split).glob("*/*.jpg")):
                label = labels.index(image.parent.name)
                example = jpeg_example(tf, image, extra.parent, split, label=label, name=image.parent.name)
                writer.write(features.make_example(example))
                added += 1
    return out, added


def beam_vs_inprocess(loaded: tuple, ingest_dir: Path, store: Path) -> float:
    """Beam img/s over in-process img/s on the examples of ``ingest_dir``, same engine, this process."""
    from hubpipe.components.train.inputs import image_dataset, load_split
    from hubpipe.components.train.transfer import EXTRACTION_BATCH

    tf, spec, _, engine = loaded
    splits = [load_split(ingest_dir, name) for name in ("train", "test")]
    started, images = time.perf_counter(), 0
    for split in splits:  # what the train stage did before the Beam job: tf.data decoding, the engine in process
        for batch, _ in image_dataset(tf, split, spec.input_size).batch(EXTRACTION_BATCH).prefetch(2):
            images += len(engine.features(batch))
    inprocess = images / (time.perf_counter() - started)
    seconds, computed = embed(loaded, ingest_dir, space_folder(loaded, store))
    beam = computed / seconds
    print(f"in process {inprocess:.1f} img/s, Beam {beam:.1f} img/s ({computed} images)", flush=True)
    return beam / inprocess


# --- peak memory of training from the store ---------------------------------------------------------------


def tiny_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), (128, 64, 32)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_store_world(root: Path, train_examples: int) -> Path:
    """An ingest folder of ``train_examples`` + 1000 placeholder examples, and every vector in the store."""
    from hubpipe.components.backbones import backbone_fingerprint, resolve_backbone
    from hubpipe.components.common import features
    from hubpipe.components.common.vector_store import SHARD_VECTORS, VectorSpace, space_dir, write_shard
    from hubpipe.components.train.engine import ENGINE_PARITY_CLASS
    from hubpipe.components.train.inputs import RESIZE_METHOD
    from hubpipe.pipeline.core.runtime import import_tensorflow

    tf = import_tensorflow()
    spec = resolve_backbone(BACKBONE)
    space = VectorSpace(
        backbone_fingerprint(spec), spec.input_size, RESIZE_METHOD, tuple(spec.input_range), ENGINE_PARITY_CLASS
    )
    ingest = root / "ingest"
    (ingest / features.EXAMPLES_DIR).mkdir(parents=True)
    features.write_labels(ingest, [f"class{n}" for n in range(CLASSES)])
    folder = space_dir(str(root / "vectors"), space)
    rng = np.random.default_rng(0)
    image = tiny_png()
    for split, count in (("train", train_examples), ("test", TEST_EXAMPLES)):
        path = ingest / features.EXAMPLES_DIR / f"{split}-00000-of-00001{features.TFRECORD_SUFFIX}"
        keys: list[bytes] = []
        with tf.io.TFRecordWriter(str(path)) as writer:
            for number in range(count):
                digest = hashlib.sha256(f"{split}/{number}".encode()).hexdigest()
                label = number % CLASSES
                writer.write(_example(features, image, digest, label, f"{split}/{number}", split=split))
                keys.append(bytes.fromhex(digest))
                if len(keys) == SHARD_VECTORS:
                    write_shard(folder, keys, rng.standard_normal((len(keys), 1280), np.float32))
                    keys = []
        if keys:
            write_shard(folder, keys, rng.standard_normal((len(keys), 1280), np.float32))
    return root


def _example(features, image: bytes, digest: str, label: int, example_id: str, *, split: str) -> bytes:
    return features.make_example(
        {
            features.IMAGE: image,
            features.FORMAT: "png",
            features.HEIGHT: 2,
            features.WIDTH: 2,
            features.TRANSCODED: 0,
            features.SHA256: digest,
            features.LABEL: label,
            features.LABEL_TEXT: f"class{label}",
            features.ID: example_id,
            features.SPLIT: split,
            features.SOURCE_PATH: example_id,
        }
    )


TRAIN_CHILD = """
import resource, sys
from pathlib import Path
from hubpipe.components.train.core import train_models
from hubpipe.components.train.session import TrainRequest
from hubpipe.pipeline.core.config import TrainConfig
root = Path(sys.argv[1])
config = TrainConfig(backbones=("efficientnet_lite0",), epochs=1, batch_size=256, baseline=False,
                     vector_store=str(root / "vectors"))
(root / "train").mkdir()
outcome = train_models(TrainRequest(root / "ingest", root / "train", root / "cache", config, 224, root / "cache"))
assert outcome.vectors_computed == {"efficientnet_lite0": 0}, outcome.vectors_computed
print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def train_rss_mb(root: Path) -> float:
    """Peak RSS (MB) of a child process training a head from the store of ``root``."""
    done = subprocess.run([sys.executable, "-c", TRAIN_CHILD, str(root)], check=True, capture_output=True, text=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith("PEAK_RSS_KB"))
    return int(line.split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000, help="images of the small dataset")
    parser.add_argument("--large", type=int, default=30000, help="images of the large dataset")
    parser.add_argument("--rss-small", type=int, default=10_000, help="train vectors of the small store")
    parser.add_argument("--rss-large", type=int, default=1_000_000, help="train vectors of the large store")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="hubpipe-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {platform.processor() or cpu_name()}, {os.cpu_count()} cores; work folder {work}", flush=True)
    try:
        figures = measure(work, args)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("RESULT " + " ".join(f"{name}={value}" for name, value in figures.items()))


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def measure(work: Path, args: argparse.Namespace) -> dict[str, str]:
    small, large = generate(work / "small", args.small), generate(work / "large", args.large)
    grown = generate(work / "grown", args.large * 11 // 10, like=large)
    extra = work / "extra"  # the images the grown dataset has beyond the large one
    for image in grown.rglob("*.jpg"):
        if not (large / image.relative_to(grown)).exists():
            (extra / image.relative_to(grown)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(image, extra / image.relative_to(grown))
    images_small, images_large = count_images(small), count_images(large)
    small_run = run_until_train(work, "run-small", small, work / "store-small")
    print(f"small: {images_small} images, stages {_durations(small_run)}", flush=True)
    large_run = run_until_train(work, "run-large", large, work / "store-large")
    print(f"large: {images_large} images, stages {_durations(large_run)}", flush=True)
    loaded = load_engine()
    ingest, added = grown_ingest(work / "run-large" / "ingest", extra, work / "grown-ingest")
    seconds, computed = embed(loaded, ingest, space_folder(loaded, work / "store-large"))
    incremental = seconds / extraction_seconds(large_run)
    print(
        f"{added} images added: {computed} embedded in {seconds:.1f} s, the whole large dataset "
        f"{extraction_seconds(large_run):.1f} s",
        flush=True,
    )
    ratio = beam_vs_inprocess(loaded, work / "run-large" / "ingest", work / "store-compare")
    rss = {}
    for name, count in (("10k", args.rss_small), ("1m", args.rss_large)):
        root = write_store_world(work / f"rss-{name}", count)
        rss[name] = train_rss_mb(root)
        print(f"train stage from a store of {count} train vectors: peak RSS {rss[name]:.0f} MB", flush=True)
        shutil.rmtree(root, ignore_errors=True)
    return {
        "images_small": str(images_small),
        "images_large": str(images_large),
        "s_per_kimg_small": f"{per_kimg(small_run, images_small):.2f}",
        "s_per_kimg_large": f"{per_kimg(large_run, images_large):.2f}",
        "train_rss_mb_10k": f"{rss['10k']:.0f}",
        "train_rss_mb_1m": f"{rss['1m']:.0f}",
        "incremental_ratio": f"{incremental:.3f}",
        "beam_vs_inprocess": f"{ratio:.2f}",
    }


def _durations(stages: dict) -> dict[str, float]:
    return {name: round(float(stage.get("duration_s", 0.0)), 1) for name, stage in stages.items()}


if __name__ == "__main__":
    main()
