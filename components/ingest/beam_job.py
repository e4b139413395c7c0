"""The ingest Beam pipeline: listing -> inspect -> group by content -> split/duplicates/leakage -> percent ->
shards of TFRecords, plus the quarantine, duplicate reports and shard summaries as JSON lines.

Memory stays flat as the data grows: image bytes only flow inside fused steps (read and inspect; read and write
a shard) and never through a GroupByKey, which the DirectRunner holds in memory. The groupings (by content hash,
by class for ``--percent``, by output shard) carry metadata only; each shard's writer reads its images again,
checks that their hash is unchanged, and streams them into the TFRecord file. That is also why shards are
written here rather than with ``WriteToTFRecord``, whose fixed-shard mode groups the serialised examples.

Element functions are module-level (picklable by reference) and import Beam only when they run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubpipe.components.ingest import quarantine as q
from hubpipe.components.ingest.io_errors import tensorflow_write_errors
from hubpipe.components.ingest.listing import TRAIN, SourceFile
from hubpipe.components.ingest.quarantine import Quarantined
from hubpipe.components.ingest.records import (
    ImageMeta,
    Limits,
    Policies,
    assign_split,
    build_example,
    inspect_file,
    read_source,
    resolve_content_group,
    select_percent,
    shard_count,
    shard_name,
    shard_of,
)
from hubpipe.pipeline.core.errors import HubpipeError
from hubpipe.pipeline.core.runtime import beam_pipeline_options

QUARANTINE, REPORTS, VIOLATIONS, HELD_OUT = "quarantine", "reports", "violations", "held_out"
#: JSON-lines outputs of the pipeline, read back by the driver: name -> file prefix in the work folder.
OUTPUTS = ("quarantine", "duplicates", "violations", "held_out", "shards", "labels")


@dataclass(frozen=True)
class PipelineSettings:
    limits: Limits
    policies: Policies
    test_fraction: float
    percent: float
    num_shards: int


def run_beam_job(
    listing_file: Path, work_dir: Path, examples_dir: Path, settings: PipelineSettings, beam_args: Sequence[str]
) -> None:
    """Runs the pipeline to completion: shards into ``examples_dir``, JSON lines into ``work_dir``."""
    import apache_beam as beam

    with _quiet_explained_failures(), beam.Pipeline(options=beam_pipeline_options(beam_args)) as pipeline:
        files = (
            pipeline
            | "ReadListing" >> beam.io.ReadFromText(str(listing_file))
            | "ParseListing" >> beam.Map(parse_source_file)
        )
        inspected = files | "Inspect" >> beam.FlatMap(inspect_element, settings.limits).with_outputs(
            QUARANTINE, main="ok"
        )
        resolved = (
            inspected.ok
            | "KeyByContent" >> beam.Map(key_by_content)
            | "GroupByContent" >> beam.GroupByKey()
            | "ResolveDuplicates"
            >> beam.FlatMap(resolve_element, settings.policies, settings.test_fraction).with_outputs(
                QUARANTINE, REPORTS, VIOLATIONS, main="kept"
            )
        )
        train, test = resolved.kept | "BySplit" >> beam.Partition(partition_by_split, 2)
        train, held_out = _apply_percent(beam, train, settings.percent)
        labels = (
            train
            | "Labels" >> beam.Map(label_of)
            | "DistinctLabels" >> beam.Distinct()
            | "LabelList" >> beam.combiners.ToList()
            | "SortLabels" >> beam.Map(sorted)
        )
        checked_test = test | "TestClasses" >> beam.FlatMap(
            check_test_class, beam.pvalue.AsSingleton(labels)
        ).with_outputs(QUARANTINE, main="kept")
        examples = (train, checked_test.kept) | "AllExamples" >> beam.Flatten()
        written = _write_examples(beam, examples, labels, examples_dir, settings.num_shards)
        quarantined = (
            inspected[QUARANTINE],
            resolved[QUARANTINE],
            checked_test[QUARANTINE],
            written[QUARANTINE],
        ) | "AllQuarantined" >> beam.Flatten()
        outputs = (quarantined, resolved[REPORTS], resolved[VIOLATIONS], held_out, written.shards, labels)
        for name, pcoll in zip(OUTPUTS, outputs, strict=True):
            _ = (
                pcoll
                | f"Json_{name}" >> beam.Map(to_json)
                | f"Write_{name}" >> beam.io.WriteToText(str(work_dir / name), file_name_suffix=".jsonl")
            )


class _ExplainedFailure(logging.Filter):
    """Drops Beam's log (with a traceback) of an element function that raised a HubpipeError: the error goes
    on to the caller, which shows it as the one line it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], HubpipeError))


@contextlib.contextmanager
def _quiet_explained_failures() -> Iterator[None]:
    logger = logging.getLogger("apache_beam.runners.common")
    explained = _ExplainedFailure()
    logger.addFilter(explained)
    try:
        yield
    finally:
        logger.removeFilter(explained)


def _write_examples(beam: Any, examples: Any, labels: Any, examples_dir: Path, num_shards: int) -> Any:
    """Groups the examples' metadata by output shard and writes each shard; outputs shard summaries."""
    counts = examples | "SplitNames" >> beam.Map(split_of) | "CountPerSplit" >> beam.combiners.Count.PerElement()
    return (
        examples
        | "KeyByShard" >> beam.Map(key_by_shard, beam.pvalue.AsDict(counts), num_shards)
        | "GroupByShard" >> beam.GroupByKey()
        | "WriteShards"
        >> beam.FlatMap(
            write_shard_element,
            str(examples_dir),
            beam.pvalue.AsSingleton(labels),
            beam.pvalue.AsDict(counts),
            num_shards,
        ).with_outputs(QUARANTINE, main="shards")
    )


def _apply_percent(beam: Any, train: Any, percent: float) -> tuple[Any, Any]:
    if percent >= 100:
        return train, train.pipeline | "NoneHeldOut" >> beam.Create([])
    subset = (
        train
        | "KeyByLabel" >> beam.Map(key_by_label)
        | "GroupByLabel" >> beam.GroupByKey()
        | "Percent" >> beam.FlatMap(percent_element, percent).with_outputs(HELD_OUT, main="kept")
    )
    return subset.kept, subset[HELD_OUT]


def read_outputs(work_dir: Path) -> dict[str, list[Any]]:
    """The pipeline's JSON-lines outputs, by name."""
    found: dict[str, list[Any]] = {}
    for name in OUTPUTS:
        rows: list[Any] = []
        for part in sorted(work_dir.glob(f"{name}*.jsonl")):
            rows.extend(json.loads(line) for line in part.read_text(encoding="utf-8").splitlines() if line)
        found[name] = rows
    return found


# ---------------------------------------------------------------------------------------------------------------
# Element functions


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True, sort_keys=True)


def parse_source_file(line: str) -> SourceFile:
    return SourceFile(**json.loads(line))


def _tagged(tag: str, value: Any) -> Any:
    from apache_beam.pvalue import TaggedOutput

    return TaggedOutput(tag, value)


def inspect_element(source: SourceFile, limits: Limits) -> Iterator[Any]:
    result = inspect_file(source, limits)
    yield _tagged(QUARANTINE, result.to_dict()) if isinstance(result, Quarantined) else result


def key_by_content(meta: ImageMeta) -> tuple[str, ImageMeta]:
    return meta.sha256, meta


def key_by_label(meta: ImageMeta) -> tuple[str, ImageMeta]:
    return meta.label, meta


def label_of(meta: ImageMeta) -> str:
    return meta.label


def split_of(meta: ImageMeta) -> str:
    return meta.split


def partition_by_split(meta: ImageMeta, partitions: int) -> int:
    return 0 if meta.split == TRAIN else 1


def resolve_element(group: tuple[str, Iterable[ImageMeta]], policies: Policies, test_fraction: float) -> Iterator[Any]:
    _, metas = group
    resolution = resolve_content_group([assign_split(m, test_fraction) for m in metas], policies)
    yield from resolution.kept
    for entry in resolution.quarantined:
        yield _tagged(QUARANTINE, entry.to_dict())
    for report in resolution.reports:
        yield _tagged(REPORTS, report)
    for violation in resolution.violations:
        yield _tagged(VIOLATIONS, violation)


def percent_element(group: tuple[str, Iterable[ImageMeta]], percent: float) -> Iterator[Any]:
    label, metas = group
    kept, held_out = select_percent(metas, percent)
    yield from kept
    yield _tagged(HELD_OUT, {"label": label, "held_out": held_out})


def check_test_class(meta: ImageMeta, labels: list[str]) -> Iterator[Any]:
    if meta.label in labels:
        yield meta
    else:
        detail = f"class {meta.label!r} has no training images"
        yield _tagged(QUARANTINE, Quarantined(meta.path, q.CLASS_NOT_IN_TRAIN, detail).to_dict())


def key_by_shard(meta: ImageMeta, counts: dict[str, int], configured: int) -> tuple[tuple[str, int], ImageMeta]:
    return (meta.split, shard_of(meta, shard_count(counts[meta.split], configured))), meta


def write_shard_element(
    group: tuple[tuple[str, int], Iterable[ImageMeta]],
    examples_dir: str,
    labels: list[str],
    counts: dict[str, int],
    configured: int,
) -> Iterator[Any]:
    (split, index), metas = group
    count = shard_count(counts[split], configured)
    name = shard_name(split, index, count)
    summary, problems = write_shard(f"{examples_dir}/{name}", metas, {label: i for i, label in enumerate(labels)})
    yield {"split": split, "file": name, "shards": count, **summary}
    for entry in problems:
        yield _tagged(QUARANTINE, entry.to_dict())


def write_shard(
    path: str, metas: Iterable[ImageMeta], label_index: dict[str, int]
) -> tuple[dict[str, Any], list[Quarantined]]:
    """Streams the images of one shard into ``path`` (written under a temporary name, then renamed)."""
    from hubpipe.pipeline.core.runtime import import_tensorflow

    tf = import_tensorflow()
    by_label: Counter[str] = Counter()
    transcoded: Counter[str] = Counter()
    formats: Counter[str] = Counter()
    problems: list[Quarantined] = []
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with tensorflow_write_errors(tf, f"writing {path}"), tf.io.TFRecordWriter(tmp) as writer:
        for meta in sorted(metas, key=lambda m: m.id):
            data = read_source(meta.uri, meta.path, meta.size + 1)
            if isinstance(data, Quarantined):
                problems.append(data)
                continue
            if hashlib.sha256(data).hexdigest() != meta.sha256:
                problems.append(Quarantined(meta.path, q.CHANGED_DURING_INGEST, "the file changed while ingesting"))
                continue
            writer.write(build_example(meta, data, label_index[meta.label]))
            by_label[meta.label] += 1
            formats[meta.format] += 1
            if meta.transcode:
                transcoded[meta.transcode] += 1
    with tensorflow_write_errors(tf, f"writing {path}"):
        tf.io.gfile.rename(tmp, path, overwrite=True)
    summary = {
        "examples": sum(by_label.values()),
        "by_label": dict(by_label),
        "formats": dict(formats),
        "transcoded": dict(transcoded),
    }
    return summary, problems
