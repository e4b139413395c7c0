"""Feature extraction as a Beam job (RunInference): the vectors equal the in-process engine's, only missing
images are embedded, and the same job runs with its work in other processes (Beam's portable runner with an
external worker pool, and the direct runner's multi_processing mode), as on Flink, Spark or Dataflow.

Tolerance: the Beam job runs the same TensorFlow engine on the same decoded images, in batches of another
composition; the vectors must agree within 1e-6 (absolute, vectors of magnitude about 1).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import train_fixtures
from processes import free_port, stop_session

from hubpipe.components.backbones import resolve_backbone
from hubpipe.components.common.split_vectors import join_split, read_split_keys
from hubpipe.components.common.vector_store import open_index
from hubpipe.components.train.extraction import ExtractionJob, ensure_vectors
from hubpipe.components.train.inputs import load_split
from hubpipe.components.train.vector_handlers import HandlerSpec, TensorFlowVectorHandler
from hubpipe.pipeline.core.runtime import import_tensorflow

TOLERANCE = 1e-6


def splits(ingest_dir: Path) -> list:
    return [load_split(ingest_dir, name) for name in ("train", "test")]


def extract(ingest_dir: Path, store: Path, backbone: Path, beam_args: list[str] | None = None):
    tf = import_tensorflow()
    spec = resolve_backbone(str(backbone))
    handler = TensorFlowVectorHandler(HandlerSpec(spec, "not-loaded-in-this-process", 8))
    parts = splits(ingest_dir)
    keys = [read_split_keys(tf, list(split.files)).keys for split in parts]
    files = [path for split in parts for path in split.files]
    return ensure_vectors(ExtractionJob(files, str(store), lambda: handler, beam_args or []), keys)


def in_process_vectors(ingest_dir: Path, backbone: Path) -> tuple[np.ndarray, np.ndarray]:
    """The vectors of both splits from the in-process TensorFlow engine over tf.data, with their keys."""
    from hubpipe.components.train.engine import frozen_features, tensorflow_features
    from hubpipe.components.train.inputs import image_dataset

    tf = import_tensorflow()
    spec = resolve_backbone(str(backbone))
    model, _ = frozen_features(tf, spec)
    features = tensorflow_features(tf, model, spec.input_size)
    vectors, keys = [], []
    for split in splits(ingest_dir):
        for images, _ in image_dataset(tf, split, spec.input_size).batch(128):
            vectors.append(features(images))
        keys.append(read_split_keys(tf, list(split.files)).keys)
    return np.concatenate(vectors), np.concatenate(keys)


def stored_vectors(store: Path, keys: np.ndarray) -> np.ndarray:
    index = open_index(str(store))
    (vectors, _), *_ = list(join_split(index, _split_keys(keys)).chunks(chunk=len(keys)))
    return vectors


def _split_keys(keys: np.ndarray):
    from hubpipe.components.common.split_vectors import SplitKeys

    return SplitKeys(keys, np.zeros(len(keys), np.int64))


def test_beam_vectors_equal_in_process_and_only_missing_images_are_embedded(
    tmp_path: Path, ingest_dir: Path, tiny_backbone: Path
) -> None:
    store = tmp_path / "store"
    first = extract(ingest_dir, store, tiny_backbone)
    total = (train_fixtures.TRAIN_PER_CLASS + train_fixtures.TEST_PER_CLASS) * len(train_fixtures.CLASSES)
    assert first.computed == total and first.inferred == total
    expected, keys = in_process_vectors(ingest_dir, tiny_backbone)
    np.testing.assert_allclose(stored_vectors(store, keys), expected, rtol=0, atol=TOLERANCE)

    again = extract(ingest_dir, store, tiny_backbone)
    assert again.computed == 0 and again.inferred is None  # nothing missing: no Beam job at all

    more = 2  # per class and split: the first images are the same bytes as before
    grown = train_fixtures.write_ingest_dir(
        tmp_path / "grown", lambda split, count: train_fixtures.example_images(split, count + more)
    )
    added = extract(grown, store, tiny_backbone)
    new_images = 2 * more * len(train_fixtures.CLASSES)
    assert added.computed == new_images and added.inferred == new_images  # only the new images saw the model
    expected, keys = in_process_vectors(grown, tiny_backbone)
    np.testing.assert_allclose(stored_vectors(store, keys), expected, rtol=0, atol=TOLERANCE)


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("localhost", port), timeout=1):
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on port {port}")


@contextlib.contextmanager
def beam_services(log_dir: Path) -> Iterator[tuple[int, int]]:
    """A local Beam job service and an SDK worker pool, as subprocesses; yields their ports."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    job_port, pool_port = free_port(), free_port()
    commands = [
        [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main", f"--port={job_port}"],
        [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={pool_port}"],
    ]
    processes = []
    try:
        for number, command in enumerate(commands):
            log = open(log_dir / f"service-{number}.log", "wb")  # noqa: SIM115 - closed with the process
            # a session of its own: the pool's own children are stopped with it (stop_session below)
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            processes.append((process, log))
        wait_for_port(job_port, processes[0][0])
        wait_for_port(pool_port, processes[1][0])
        yield job_port, pool_port
    finally:
        for process, log in processes:
            stop_session(process)
            log.close()


def writer_pids(store: Path) -> set[int]:
    return {json.loads(path.read_text())["writer"]["pid"] for path in store.glob("shard-*.json")}


def check_ran_elsewhere(tmp_path: Path, ingest_dir: Path, tiny_backbone: Path, store: Path) -> None:
    pids = writer_pids(store)
    assert pids and os.getpid() not in pids  # the model ran, and the shards were written, in other processes
    expected, keys = in_process_vectors(ingest_dir, tiny_backbone)
    np.testing.assert_allclose(stored_vectors(store, keys), expected, rtol=0, atol=TOLERANCE)


@pytest.mark.timeout(400)
def test_portable_runner_with_external_workers(tmp_path: Path, ingest_dir: Path, tiny_backbone: Path) -> None:
    store = tmp_path / "store"
    with beam_services(tmp_path) as (job_port, pool_port):
        run = extract(
            ingest_dir,
            store,
            tiny_backbone,
            [
                "--runner=PortableRunner",
                f"--job_endpoint=localhost:{job_port}",
                "--environment_type=EXTERNAL",
                f"--environment_config=localhost:{pool_port}",
            ],
        )
    assert run.computed == (train_fixtures.TRAIN_PER_CLASS + train_fixtures.TEST_PER_CLASS) * 3
    check_ran_elsewhere(tmp_path, ingest_dir, tiny_backbone, store)


@pytest.mark.timeout(400)
def test_direct_runner_multi_processing(tmp_path: Path, ingest_dir: Path, tiny_backbone: Path) -> None:
    store = tmp_path / "store"
    args = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    run = extract(ingest_dir, store, tiny_backbone, args)
    assert run.computed == (train_fixtures.TRAIN_PER_CLASS + train_fixtures.TEST_PER_CLASS) * 3
    check_ran_elsewhere(tmp_path, ingest_dir, tiny_backbone, store)
