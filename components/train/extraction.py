"""Feature extraction as a Beam job the train stage launches: only the images whose vectors are not in the
vector store yet are embedded, and their vectors are written to the store as new shards.

Pipeline (wiring only; the handlers are :mod:`.vector_handlers`, the store :mod:`..common.vector_store`)::

    ingested TFRecords of the splits -> (content key, encoded image) -> drop keys already stored (a lookup in
    the sorted keys the driver checked, before anything is decoded) -> RunInference (decode + backbone, one
    model per worker) -> store shards (atomic, a shard every SHARD_VECTORS vectors and at each bundle's end)

The runner comes from ``--beam-arg`` as for ingest (:func:`~hubpipe.pipeline.core.runtime.beam_pipeline_options`):
in process by default, or Dataflow, Flink, Spark through their runners. The workers must reach the ingested
files and the store (on a cluster: ``gs://`` paths or a shared volume).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hubpipe.components.common import features
from hubpipe.components.common.vector_store import (
    KEY_BYTES,
    SHARD_VECTORS,
    ShardWriter,
    StoreIndex,
    content_key,
    is_remote,
    key_bytes,
    open_index,
    sweep,
)
from hubpipe.pipeline.core.errors import StageError
from hubpipe.pipeline.core.runtime import beam_pipeline_options

LOG = logging.getLogger(__name__)
#: Seconds between two progress lines of a shard writer.
PROGRESS_SECONDS = 10.0


@dataclass(frozen=True)
class ExtractionRun:
    """What one extraction did."""

    index: StoreIndex  # the space's index after it
    computed: int  # vectors computed and stored (0: everything was in the store)
    seconds: float
    inferred: int | None = None  # images the model saw, as the runner's metrics report it (None: no metrics)


def keyed_image(record: bytes) -> tuple[bytes, bytes]:
    """A serialised example -> (content key, encoded image bytes)."""
    from hubpipe.pipeline.core.runtime import import_tensorflow

    example = import_tensorflow().train.Example.FromString(record).features.feature
    encoded = example[features.IMAGE].bytes_list.value[0]
    digest = example[features.SHA256].bytes_list.value[0]
    transcoded = bool(example[features.TRANSCODED].int64_list.value[0])
    return content_key(digest, transcoded, encoded), encoded


def not_stored(element: tuple[bytes, bytes], stored: np.ndarray) -> bool:
    """True when the element's key is not among ``stored`` (sorted ``S32`` keys)."""
    if not len(stored):
        return True
    at = int(np.searchsorted(stored, np.bytes_(element[0])))
    return at >= len(stored) or key_bytes(stored[at]) != element[0]


def store_shards_fn(folder: str, about: dict[str, Any], total: int) -> Any:
    """The DoFn that writes vectors as shards: one writer per bundle, flushed at the bundle's end."""
    import apache_beam as beam

    class _StoreShards(beam.DoFn):
        def start_bundle(self) -> None:
            self.writer = ShardWriter(folder, about, SHARD_VECTORS)
            self.count, self.logged = 0, time.monotonic()

        def process(self, element: tuple[bytes, np.ndarray]) -> Iterator[int]:
            self.writer.add(element[0], element[1])
            self.count += 1
            if time.monotonic() - self.logged > PROGRESS_SECONDS:
                LOG.info("features: %d of %d images embedded by this worker's bundle", self.count, total)
                self.logged = time.monotonic()
            return iter(())

        def finish_bundle(self) -> None:
            self.writer.close()

    return _StoreShards()


@dataclass(frozen=True)
class ExtractionJob:
    """Where the images are, where their vectors go, and how to run the model over them."""

    files: Sequence[Path]  # the ingested TFRecord files of the splits wanted
    folder: str  # the vector space's folder in the store
    handler: Callable[[], Any]  # makes the model handler; called only when a vector is missing
    beam_args: Sequence[str] = ()
    about: dict[str, Any] = field(default_factory=dict)  # recorded in each shard's JSON


def run_extraction(job: ExtractionJob, handler: Any, stored: np.ndarray, total: int) -> int | None:
    """Runs the Beam job to completion: vectors of every image in ``job.files`` whose key is not ``stored``.

    Returns how many images went through the model, when the runner reports Beam metrics (else None).
    """
    import apache_beam as beam
    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

    pipeline = beam.Pipeline(options=beam_pipeline_options(job.beam_args))
    stored_keys = pipeline | "StoredKeys" >> beam.Create([stored])
    _ = (
        pipeline
        | "Files" >> beam.Create([str(path) for path in job.files])
        | "Read" >> beam.io.ReadAllFromTFRecord()
        | "Key" >> beam.Map(keyed_image)
        | "NotStored" >> beam.Filter(not_stored, beam.pvalue.AsSingleton(stored_keys))
        | "Embed" >> RunInference(KeyedModelHandler(handler))
        | "Store" >> beam.ParDo(store_shards_fn(job.folder, job.about, total))
    )
    with _without_memory_probe_warning():
        result = pipeline.run()
        result.wait_until_finish()
    return _embedded_count(result)


class _MemoryProbeWarning(logging.Filter):
    """Drops RunInference's warning (through the root logger, once per bundle) that it cannot read the worker's
    memory use: noise in every run, about a metric hubpipe does not read."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Resource module is not available")


@contextlib.contextmanager
def _without_memory_probe_warning() -> Iterator[None]:
    quiet = _MemoryProbeWarning()
    root = logging.getLogger()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def _embedded_count(result: Any) -> int | None:
    from apache_beam.metrics.metric import MetricsFilter

    from hubpipe.components.train.vector_handlers import IMAGES_EMBEDDED, METRICS_NAMESPACE

    try:
        query = MetricsFilter().with_namespace(METRICS_NAMESPACE).with_name(IMAGES_EMBEDDED)
        counters = result.metrics().query(query)["counters"]
    except (NotImplementedError, KeyError, AttributeError):
        return None
    return sum(counter.committed or counter.attempted or 0 for counter in counters) if counters else None


def ensure_vectors(job: ExtractionJob, keys: Sequence[np.ndarray]) -> ExtractionRun:
    """The space's index once every key in ``keys`` has a vector: runs the extraction for the missing ones.

    The job's handler is made only when something is missing (so a cached run chooses, converts and loads no
    engine).
    """
    started, folder = time.monotonic(), job.folder
    if not is_remote(folder):
        sweep(Path(folder))  # what killed writers left, even when this run has nothing to write
    index = open_index(folder)
    wanted = np.unique(np.concatenate(list(keys))) if keys else np.zeros(0, f"S{KEY_BYTES}")
    missing = wanted[~index.contains(wanted)]
    if not len(missing):
        LOG.info("features: all %d images' vectors are in the vector store (%s)", len(wanted), folder)
        return ExtractionRun(index, 0, time.monotonic() - started)
    LOG.info(
        "features: embedding %d of %d images (%d in the vector store %s)",
        len(missing),
        len(wanted),
        len(wanted) - len(missing),
        folder,
    )
    inferred = run_extraction(job, job.handler(), index.keys, len(missing))
    after = open_index(folder, known=index)
    left = missing[~after.contains(missing)]
    if len(left):
        raise StageError(f"the extraction left {len(left)} of {len(missing)} images without a vector in {folder}")
    seconds = time.monotonic() - started
    LOG.info("features: %d vectors in %.1f s (%.1f img/s)", len(missing), seconds, len(missing) / seconds)
    return ExtractionRun(after, len(missing), seconds, inferred)
