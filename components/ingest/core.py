"""The ingest core: an :class:`IngestRequest` in (a resolved source), the artifact folder of
:mod:`.layout` and a :class:`~hubpipe.pipeline.core.stage.DataOutcome` out.

Every file seen is accounted for: ``files_seen = examples_written + quarantined + held_out_by_percent``.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hubpipe.components.common import features as f
from hubpipe.components.common.text import summarize
from hubpipe.components.ingest import quarantine as q
from hubpipe.components.ingest.io_errors import from_beam_failure
from hubpipe.components.ingest.layout import DUPLICATES_FILE, QUARANTINE_FILE, SUMMARY_FILE
from hubpipe.components.ingest.listing import TEST, TRAIN, Listing, list_dataset
from hubpipe.components.ingest.quarantine import Quarantined, count_by_reason, summary_line
from hubpipe.components.ingest.records import Limits, Policies, shard_name
from hubpipe.components.ingest.sources import ResolvedSource
from hubpipe.pipeline.core.artifacts import write_json_atomic
from hubpipe.pipeline.core.config import DataConfig
from hubpipe.pipeline.core.errors import DataError, StageError
from hubpipe.pipeline.core.stage import DataOutcome

LOG = logging.getLogger("hubpipe.ingest")

POLICY_SETTINGS = {
    q.DUPLICATE_IN_CLASS: "data.duplicates_in_class",
    q.CONFLICTING_LABELS: "data.duplicates_across_classes",
    q.TRAIN_TEST_LEAKAGE: "data.leakage",
}
SHOWN_IN_LOG = 10


@dataclass(frozen=True)
class IngestRequest:
    source: ResolvedSource
    output_dir: Path
    data: DataConfig
    beam_args: Sequence[str] = ()


def ingest(request: IngestRequest) -> DataOutcome:
    """Lists, checks and writes the examples of the request's source into its output folder; the outcome is
    rejected when identical images break a ``fail`` policy."""
    source, output_dir, data = request.source, request.output_dir, request.data
    listing = list_dataset(source.location, data.layout)
    _check_listing(listing, source)
    LOG.info(
        "ingest: %d files in %d classes (%s layout) from %s",
        len(listing.files),
        len(listing.classes()),
        listing.layout,
        source.description,
    )
    outputs = _run_beam(listing, output_dir, data, request.beam_args)
    labels = outputs["labels"][0] if outputs["labels"] else []
    quarantined = sorted(
        [*source.skipped, *listing.quarantined, *(Quarantined.from_dict(d) for d in outputs["quarantine"])],
        key=lambda entry: (entry.reason, entry.path),
    )
    if len(labels) < 2:
        raise DataError(
            f"after quarantine {len(labels)} class(es) have training images ({', '.join(labels) or 'none'}); "
            f"a classifier needs two; quarantined: {summary_line(count_by_reason(quarantined))}"
        )
    f.write_labels(output_dir, labels)
    _fill_missing_shards(output_dir / f.EXAMPLES_DIR, outputs["shards"])
    results, summary = _summarize(source, listing, labels, quarantined, outputs)
    write_json_atomic(output_dir / QUARANTINE_FILE, [entry.to_dict() for entry in quarantined])
    write_json_atomic(output_dir / DUPLICATES_FILE, sorted(outputs["duplicates"], key=lambda d: d["paths"]))
    write_json_atomic(output_dir / SUMMARY_FILE, summary)
    _log_summary(results, quarantined)
    return DataOutcome(results, rejected=_rejection(outputs["violations"]))


def _check_listing(listing: Listing, source: ResolvedSource) -> None:
    empty = f"empty class folders: {summarize(listing.empty_classes)}" if listing.empty_classes else ""
    if empty:
        LOG.warning("%s (left out)", empty)
    classes = listing.classes(TRAIN)
    if not classes:
        empty = f" ({empty})" if empty else ""
        raise DataError(
            f"no images found in {source.description}: expected <class>/ folders of images, "
            f"or train/<class>/ and test/<class>/{empty}"
        )
    if len(classes) == 1:
        raise DataError(
            f"only one class ({classes[0]}) in {source.description}: a classifier needs at least two class folders"
        )


def _run_beam(listing: Listing, output_dir: Path, data: DataConfig, beam_args: Sequence[str]) -> dict[str, list]:
    from hubpipe.components.ingest.beam_job import PipelineSettings, read_outputs, run_beam_job

    settings = PipelineSettings(
        limits=Limits(data.max_file_bytes, data.max_pixels),
        policies=Policies(data.duplicates_in_class, data.duplicates_across_classes, data.leakage),
        test_fraction=data.test_fraction,
        percent=data.percent,
        num_shards=data.num_shards,
    )
    examples_dir = output_dir / f.EXAMPLES_DIR
    examples_dir.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix=".ingest-work-", dir=output_dir))
    try:
        listing_file = work_dir / "listing.jsonl"
        with open(listing_file, "w", encoding="ascii") as handle:
            for source_file in listing.files:
                handle.write(json.dumps(asdict(source_file), ensure_ascii=True) + "\n")
        try:
            run_beam_job(listing_file, work_dir, examples_dir, settings, beam_args)
        except Exception as exc:
            machine = from_beam_failure(exc)  # a full or failing disk, met by an element function
            if machine is None:
                raise
            raise machine from None
        return read_outputs(work_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _fill_missing_shards(examples_dir: Path, shards: list[dict]) -> None:
    """Writes empty shard files for shard numbers no example hashed to, so every split's set is complete."""
    for split, count in {(shard["split"], shard["shards"]) for shard in shards}:
        for index in range(count):
            path = examples_dir / shard_name(split, index, count)
            if not path.exists():
                path.write_bytes(b"")


def _summarize(
    source: ResolvedSource, listing: Listing, labels: list[str], quarantined: list[Quarantined], outputs: dict
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The key results (for run.json) and the fuller summary.json; checks that every file is accounted for."""
    shards = outputs["shards"]
    per_class = {label: {TRAIN: 0, TEST: 0} for label in labels}
    transcoded: Counter[str] = Counter()
    formats: Counter[str] = Counter()
    for shard in shards:
        for label, count in shard["by_label"].items():
            per_class[label][shard["split"]] += count
        transcoded.update(shard["transcoded"])
        formats.update(shard["formats"])
    split_counts = {split: sum(c[split] for c in per_class.values()) for split in (TRAIN, TEST)}
    held_out = sum(row["held_out"] for row in outputs["held_out"])
    files_seen = len(listing.files) + len(listing.quarantined) + len(source.skipped)
    written = sum(split_counts.values())
    if files_seen != written + len(quarantined) + held_out:
        raise StageError(
            f"ingest lost track of files: {files_seen} seen, but {written} written + {len(quarantined)} "
            f"quarantined + {held_out} held out by data.percent"
        )
    results = {
        "files_seen": files_seen,
        "examples_written": written,
        "train_examples": split_counts[TRAIN],
        "test_examples": split_counts[TEST],
        "classes": len(labels),
        "quarantined": len(quarantined),
        "quarantined_by_reason": count_by_reason(quarantined),
        "transcoded": sum(transcoded.values()),
        "transcoded_by_reason": dict(sorted(transcoded.items())),
        **_duplicate_counts(outputs["duplicates"]),
        "held_out_by_percent": held_out,
        "layout": listing.layout,
        "hidden_skipped": listing.hidden_skipped,
        "empty_class_folders": listing.empty_classes,
        "test_only_classes": sorted({sf.label for sf in listing.files if sf.split == TEST} - set(labels)),
        "classes_without_test_images": [label for label, c in per_class.items() if c[TEST] == 0],
    }
    summary = {
        **results,
        "source": {"kind": source.kind, "description": source.description, "location": source.location},
        "formats": dict(sorted(formats.items())),
        "per_class": per_class,
        "shards": sorted(s["file"] for s in shards),
    }
    return results, summary


def _duplicate_counts(reports: list[dict]) -> dict[str, int]:
    """Files involved, whatever the policy did: extra copies in a class, files with conflicting labels,
    training files whose content is also in the test split."""
    counts = {q.DUPLICATE_IN_CLASS: 0, q.CONFLICTING_LABELS: 0, q.TRAIN_TEST_LEAKAGE: 0}
    for report in reports:
        paths = len(report["paths"])
        counts[report["kind"]] += paths - 1 if report["kind"] != q.CONFLICTING_LABELS else paths
    return {
        "duplicates_in_class": counts[q.DUPLICATE_IN_CLASS],
        "conflicting_labels": counts[q.CONFLICTING_LABELS],
        "train_test_leakage": counts[q.TRAIN_TEST_LEAKAGE],
    }


def _rejection(violations: list[str]) -> str | None:
    if not violations:
        return None
    kinds = sorted({v.split(":", 1)[0] for v in violations})
    settings = ", ".join(f"{POLICY_SETTINGS[k]}=fail" for k in kinds)
    shown = summarize(sorted(violations), separator="; ")
    return f"identical images rejected by {settings}: {shown} (see duplicates.json)"


def _log_summary(results: dict[str, Any], quarantined: list[Quarantined]) -> None:
    LOG.info(
        "ingest: %d files seen -> %d examples (train %d, test %d, %d classes), %d transcoded, "
        "%d held out by data.percent, %d quarantined",
        results["files_seen"],
        results["examples_written"],
        results["train_examples"],
        results["test_examples"],
        results["classes"],
        results["transcoded"],
        results["held_out_by_percent"],
        results["quarantined"],
    )
    if quarantined:
        LOG.info("quarantine: %s (all in %s)", summary_line(results["quarantined_by_reason"]), QUARANTINE_FILE)
        for entry in quarantined[:SHOWN_IN_LOG]:
            LOG.info("  %s: %s (%s)", entry.path, entry.reason, entry.detail)
        if len(quarantined) > SHOWN_IN_LOG:
            LOG.info("  ... and %d more", len(quarantined) - SHOWN_IN_LOG)
