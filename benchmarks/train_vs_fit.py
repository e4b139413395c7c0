"""The classic ``model.fit`` through a frozen TF Hub layer next to hubpipe's train core: time and accuracy.

Both train the same backbone's classifier head on the same images (the embedded sample dataset: 10 classes,
75 training and 25 test images per class) for the same epochs, batch size, learning rate and seed, in one
process, one after the other:

* **classic**: ``image_dataset_from_directory`` (bilinear resize to the backbone's size, pixels / 255), a
  ``Sequential([hub.KerasLayer(trainable=False), Dense(C, softmax)])``, and ``model.fit`` with the test set
  as validation data every epoch, as the classic course does; every epoch decodes every image and runs
  every image (train and test) through the backbone again. Like the course, it logs to TensorBoard (a
  ``TensorBoard`` callback) and saves the trained model. Its test accuracy is the last epoch's ``val_accuracy``.
* **hubpipe**: :func:`hubpipe.components.train.core.train_models` with a cold embedding cache (the same files
  as TFRecords, as the ingest stage writes them; built before timing): each image goes through the backbone
  once, the head trains on the cached vectors; the timing includes writing the serving SavedModel, the
  head, the predictions and the TensorBoard logs. The from-scratch baseline is off. It runs twice per round:
  with the default configuration after emptying the TFLite conversion cache, as on a machine's first run
  (``train.engine=auto`` does not convert for so few images, see :mod:`hubpipe.components.train.engine`,
  so it extracts with TensorFlow), and with ``train.engine=tflite`` on a conversion cached beforehand
  (untimed), as every run after one that converted.

Both paths get the same process settings (AutoGraph skips tf-keras' internals, see
:func:`hubpipe.pipeline.core.runtime.import_tensorflow`), except TensorFlow's CPU kernels: hubpipe turns oneDNN on,
while the course's code runs with TensorFlow's own choice, which is oneDNN only on CPUs with AVX-512 VNNI, BF16
or AMX. So the classic side runs in a child process with ``TF_ENABLE_ONEDNN_OPTS`` set to TensorFlow's own
choice (``fit_s``), and, where that choice is not oneDNN, also in this process with oneDNN (``fit_onednn_s``:
the same kernels as hubpipe, so ``speedup_same_kernels`` is what caching the vectors alone gains). The backbone
is built (offline preset) before timing. The sides alternate ``--repeats`` times (each hubpipe round with a
new, cold cache) and each side's fastest round counts, so that load from other processes on a shared machine
hits all alike. Run:
``.venv/bin/python benchmarks/train_vs_fit.py [--epochs 5] [--repeats 2] [--backbone efficientnet_lite0]
[--train-per-class 75 --test-per-class 25]``. The classic path runs every image through the backbone once per
epoch and hubpipe once in all, so the ratio tends to the number of epochs as the dataset grows; on the small
sample dataset hubpipe's fixed costs (loading the backbone, writing the serving SavedModel) weigh more.
The last line is machine-readable::

    RESULT fit_s=... hubpipe_s=... speedup=... fit_acc=... hubpipe_acc=... tflite_s=... tflite_speedup=...
        tflite_acc=... classic_onednn=... fit_onednn_s=... speedup_same_kernels=... tflite_speedup_same_kernels=...

``classic_onednn`` says whether TensorFlow picks oneDNN by itself here (then ``fit_onednn_s`` is ``fit_s``).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from hubpipe.components.backbones import load_feature_extractor, resolve_backbone
from hubpipe.components.common import features
from hubpipe.components.train.core import train_models
from hubpipe.components.train.engine import TFLITE, conversion_dir
from hubpipe.components.train.session import TrainRequest
from hubpipe.data.sample import SampleSpec, ensure_sample_dataset
from hubpipe.pipeline.core.cache_root import cache_root
from hubpipe.pipeline.core.config import TrainConfig
from hubpipe.pipeline.core.runtime import ONEDNN_ENV, import_tensorflow

SPLITS = ("train", "test")


def write_examples(tf: Any, dataset: Path, ingest_dir: Path) -> list[str]:
    """The dataset's files as one TFRecord file per split (the ingest stage's format); returns the class names."""
    class_names = sorted(path.name for path in (dataset / "train").iterdir() if path.is_dir())
    (ingest_dir / features.EXAMPLES_DIR).mkdir(parents=True)
    for split in SPLITS:
        path = ingest_dir / features.EXAMPLES_DIR / f"{split}-00000-of-00001{features.TFRECORD_SUFFIX}"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for label, name in enumerate(class_names):
                for image in sorted((dataset / split / name).iterdir()):
                    writer.write(features.make_example(jpeg_example(tf, image, dataset, split, label=label, name=name)))
    features.write_labels(ingest_dir, class_names)
    return class_names


def jpeg_example(tf: Any, image: Path, root: Path, split: str, *, label: int, name: str) -> dict[str, Any]:
    """The example ingest writes for the JPEG file ``image`` (its id: its path under ``root``)."""
    data = image.read_bytes()
    height, width, _ = tf.io.decode_image(data, channels=3).shape
    relative = image.relative_to(root).as_posix()
    return {
        features.IMAGE: data,
        features.FORMAT: "jpeg",
        features.HEIGHT: height,
        features.WIDTH: width,
        features.TRANSCODED: 0,
        features.SHA256: hashlib.sha256(data).hexdigest(),
        features.LABEL: label,
        features.LABEL_TEXT: name,
        features.ID: relative,
        features.SPLIT: split,
        features.SOURCE_PATH: relative,
    }


def classic_fit(tf: Any, dataset: Path, backbone: str, config: TrainConfig, work: Path) -> tuple[float, float]:
    """The course's way, TensorBoard callback and saved model included; returns (seconds, final test accuracy)."""
    spec = resolve_backbone(backbone)
    started = time.perf_counter()
    tf.keras.utils.set_random_seed(config.seed)
    size = (spec.input_size, spec.input_size)

    def load(split: str, shuffle: bool) -> Any:
        images = tf.keras.utils.image_dataset_from_directory(
            dataset / split, image_size=size, batch_size=config.batch_size, shuffle=shuffle, seed=config.seed
        )
        return images.map(lambda x, y: (x / 255.0, y))

    train, test = load("train", True), load("test", False)
    num_classes = len([path for path in (dataset / "train").iterdir() if path.is_dir()])
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(*size, 3)),
            load_feature_extractor(spec, trainable=False),
            tf.keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=tf.keras.optimizers.Adam(config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    logs = tf.keras.callbacks.TensorBoard(log_dir=str(work / "logs"))
    history = model.fit(train, epochs=config.epochs, validation_data=test, callbacks=[logs], verbose=2)
    model.save(str(work / "model"))
    return time.perf_counter() - started, float(history.history["val_accuracy"][-1])


def hubpipe_train(ingest_dir: Path, work: Path, config: TrainConfig) -> tuple[float, float]:
    """hubpipe's train core with a cold cache; returns (seconds, test accuracy)."""
    output, cache = work / "train", work / "cache"
    output.mkdir()
    started = time.perf_counter()
    outcome = train_models(TrainRequest(ingest_dir, output, cache, config, image_size=224, cache_root=cache_root()))
    seconds = time.perf_counter() - started
    (model,) = outcome.models
    logging.getLogger("hubpipe.benchmark").info(
        "hubpipe: feature extraction %.1f s, head training %.1f s",
        model.feature_extraction_seconds,
        model.train_seconds,
    )
    return seconds, model.test_accuracy


def tensorflow_picks_onednn() -> bool:
    """Whether TensorFlow turns its oneDNN kernels on by itself on this CPU (``TF_ENABLE_ONEDNN_OPTS`` unset)."""
    env = {name: value for name, value in os.environ.items() if name != ONEDNN_ENV}
    # onednn_enabled without import_tensorflow, which would set the variable.
    probe = "from hubpipe.pipeline.core.runtime import onednn_enabled; print(onednn_enabled())"
    result = subprocess.run([sys.executable, "-c", probe], env=env, check=True, capture_output=True, text=True)
    return result.stdout.strip().splitlines()[-1] == "True"


def classic_in_child(args: argparse.Namespace, work: Path, onednn: bool) -> tuple[float, float]:
    """:func:`classic_fit` in a child process with oneDNN on or off; returns (seconds, final test accuracy)."""
    command = [sys.executable, __file__, "--classic-only", str(work), "--epochs", str(args.epochs)]
    command += ["--backbone", args.backbone, "--train-per-class", str(args.train_per_class)]
    command += ["--test-per-class", str(args.test_per_class)]
    env = {**os.environ, ONEDNN_ENV: "1" if onednn else "0"}
    result = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    seconds, accuracy = result.stdout.strip().splitlines()[-1].split()[1:]
    return float(seconds), float(accuracy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds; the fastest of each side counts")
    parser.add_argument(
        "--train-per-class", type=int, default=75, help="sample dataset size (default: the embedded one)"
    )
    parser.add_argument("--test-per-class", type=int, default=25)
    parser.add_argument("--classic-only", type=Path, help=argparse.SUPPRESS)  # the child of classic_in_child
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("hubpipe").setLevel(logging.INFO)

    tf = import_tensorflow()
    config = TrainConfig(backbones=(args.backbone,), epochs=args.epochs, baseline=False, precision="float32")
    dataset = ensure_sample_dataset(cache_root(), SampleSpec(0, args.train_per_class, args.test_per_class))
    if args.classic_only:
        seconds, accuracy = classic_fit(tf, dataset, args.backbone, config, args.classic_only)
        print(f"CLASSIC {seconds} {accuracy}")
        return
    load_feature_extractor(resolve_backbone(args.backbone))  # builds the offline backbone once, untimed
    classic_onednn = tensorflow_picks_onednn()
    tflite_config = replace(config, engine=TFLITE)
    fits, fits_onednn, hubpipes, tflites = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="hubpipe-train-vs-fit-") as tmp:
        work = Path(tmp)
        write_examples(tf, dataset, work / "ingest")
        for round_ in range(args.repeats):
            (work / f"classic{round_}").mkdir()
            fits.append(classic_in_child(args, work / f"classic{round_}", classic_onednn))
            if not classic_onednn:
                (work / f"classic-onednn{round_}").mkdir()
                fits_onednn.append(classic_fit(tf, dataset, args.backbone, config, work / f"classic-onednn{round_}"))
            shutil.rmtree(conversion_dir(cache_root()), ignore_errors=True)
            (work / f"round{round_}").mkdir()
            hubpipes.append(hubpipe_train(work / "ingest", work / f"round{round_}", config))
            (work / f"convert{round_}").mkdir()
            hubpipe_train(work / "ingest", work / f"convert{round_}", tflite_config)  # caches the conversion
            (work / f"tflite{round_}").mkdir()
            tflites.append(hubpipe_train(work / "ingest", work / f"tflite{round_}", tflite_config))
            same_kernels = f", with oneDNN {fits_onednn[-1][0]:.1f} s" if fits_onednn else ""
            print(
                f"round {round_ + 1}: classic {fits[-1][0]:.1f} s{same_kernels}, hubpipe {hubpipes[-1][0]:.1f} s, "
                f"hubpipe on the cached TFLite conversion {tflites[-1][0]:.1f} s",
                flush=True,
            )
    (fit_s, fit_acc), (hubpipe_s, hubpipe_acc), (tflite_s, tflite_acc) = min(fits), min(hubpipes), min(tflites)
    fit_onednn_s = min(fits_onednn)[0] if fits_onednn else fit_s

    print(f"classic model.fit : {fit_s:7.1f} s  test accuracy {fit_acc:.4f} (oneDNN: {classic_onednn})")
    if fits_onednn:
        print(f"  with oneDNN     : {fit_onednn_s:7.1f} s  test accuracy {min(fits_onednn)[1]:.4f}")
    print(f"hubpipe train core: {hubpipe_s:7.1f} s  test accuracy {hubpipe_acc:.4f}")
    print(f"  on TFLite       : {tflite_s:7.1f} s  test accuracy {tflite_acc:.4f}")
    print(
        f"speedup {fit_s / hubpipe_s:.2f}x ({fit_s / tflite_s:.2f}x on TFLite), accuracy difference "
        f"{100 * (hubpipe_acc - fit_acc):+.1f} points ({100 * (tflite_acc - fit_acc):+.1f})"
    )
    print(
        f"RESULT fit_s={fit_s:.1f} hubpipe_s={hubpipe_s:.1f} speedup={fit_s / hubpipe_s:.2f} "
        f"fit_acc={fit_acc:.4f} hubpipe_acc={hubpipe_acc:.4f} tflite_s={tflite_s:.1f} "
        f"tflite_speedup={fit_s / tflite_s:.2f} tflite_acc={tflite_acc:.4f} classic_onednn={int(classic_onednn)} "
        f"fit_onednn_s={fit_onednn_s:.1f} speedup_same_kernels={fit_onednn_s / hubpipe_s:.2f} "
        f"tflite_speedup_same_kernels={fit_onednn_s / tflite_s:.2f}"
    )


if __name__ == "__main__":
    main()
