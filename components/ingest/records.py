"""The per-image logic of the ingest pipeline as plain functions: inspection, split assignment, duplicates and
leakage, ``--percent`` subsetting, shard assignment and example building. The Beam wiring is in
:mod:`hubpipe.components.ingest.beam_job`.
"""

from __future__ import annotations

import errno
import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from hubpipe.components.common import features as f
from hubpipe.components.common.text import first_line, summarize
from hubpipe.components.ingest import images
from hubpipe.components.ingest import quarantine as q
from hubpipe.components.ingest.io_errors import is_machine_read_error, machine_failure
from hubpipe.components.ingest.listing import HASH_SPLIT, TEST, TRAIN, SourceFile
from hubpipe.components.ingest.quarantine import Quarantined

EXAMPLES_PER_SHARD = 2000
KEEP, DROP, FAIL = "keep", "drop", "fail"


@dataclass(frozen=True)
class Limits:
    """Per-file limits: larger files are quarantined (see DataConfig)."""

    max_file_bytes: int
    max_pixels: int


@dataclass(frozen=True)
class Policies:
    """What to do with identical content: keep, drop or fail (see DataConfig)."""

    duplicates_in_class: str = DROP
    duplicates_across_classes: str = DROP
    leakage: str = DROP


@dataclass(frozen=True)
class ImageMeta:
    """An image that passed inspection: everything but its bytes (which are read again when written)."""

    uri: str
    path: str
    label: str
    split: str
    sha256: str
    format: str
    width: int
    height: int
    size: int
    transcode: str = ""

    @property
    def id(self) -> str:
        """Stable and unique in a dataset: derived from the source-relative path."""
        return hashlib.sha256(self.path.encode("utf-8", "surrogateescape")).hexdigest()[:24]


def read_bytes(uri: str, limit: int) -> bytes:
    """At most ``limit`` bytes of a local file or a ``tf.io.gfile`` URI; OSError (with an errno) when it cannot
    be read. A gfile error that says the file is gone or forbidden becomes ENOENT or EACCES, any other (a
    network or service failure) EIO: the machine's (see :mod:`.io_errors`)."""
    if "://" not in uri:
        with open(uri, "rb") as handle:
            return handle.read(limit)
    from hubpipe.pipeline.core.runtime import import_tensorflow

    tf = import_tensorflow()
    try:
        with tf.io.gfile.GFile(uri, "rb") as handle:
            return handle.read(limit)
    except Exception as exc:  # gfile raises tf.errors.OpError subclasses
        code = {tf.errors.NotFoundError: errno.ENOENT, tf.errors.PermissionDeniedError: errno.EACCES}
        raise OSError(code.get(type(exc), errno.EIO), first_line(exc), uri) from None


def read_source(uri: str, path: str, limit: int) -> bytes | Quarantined:
    """``read_bytes``, or an ``unreadable`` entry when the file cannot be read because of what it is (gone,
    not a file, forbidden); raises MachineIOError when the machine failed (EIO, no memory, ...)."""
    try:
        return read_bytes(uri, limit)
    except (OSError, MemoryError) as exc:
        if not isinstance(exc, OSError) or is_machine_read_error(exc):
            raise machine_failure(exc, f"reading {uri}") from None
        return Quarantined(path, q.UNREADABLE, exc.strerror or str(exc))


def inspect_file(source: SourceFile, limits: Limits) -> ImageMeta | Quarantined:
    """Reads one file (never more than the size limit) and decides whether it can become an example."""
    if source.size > limits.max_file_bytes:
        return Quarantined(source.path, q.FILE_TOO_LARGE, f"{source.size:,} bytes, limit {limits.max_file_bytes:,}")
    data = read_source(source.uri, source.path, limits.max_file_bytes + 1)
    if isinstance(data, Quarantined):
        return data
    if len(data) > limits.max_file_bytes:
        return Quarantined(source.path, q.FILE_TOO_LARGE, f"over {limits.max_file_bytes:,} bytes")
    try:
        verdict = images.inspect_image(data, limits.max_pixels)
    except (OSError, MemoryError) as exc:  # only the machine's errors leave inspect_image
        raise machine_failure(exc, f"decoding {source.uri}") from None
    if isinstance(verdict, images.Rejection):
        return Quarantined(source.path, verdict.reason, verdict.detail)
    digest = hashlib.sha256(data).hexdigest()
    return ImageMeta(
        uri=source.uri,
        path=source.path,
        label=source.label,
        split=source.split,
        sha256=digest,
        format=verdict.format,
        width=verdict.width,
        height=verdict.height,
        size=len(data),
        transcode=verdict.transcode,
    )


def hash_fraction(sha256: str) -> float:
    """A number in [0, 1) from the content hash: the same file always lands in the same split."""
    return int(sha256[:8], 16) / 2**32


def assign_split(meta: ImageMeta, test_fraction: float) -> ImageMeta:
    if meta.split != HASH_SPLIT:
        return meta
    return replace(meta, split=TEST if hash_fraction(meta.sha256) < test_fraction else TRAIN)


# ---------------------------------------------------------------------------------------------------------------
# Identical content


@dataclass
class Resolution:
    """The outcome for one group of files with identical content."""

    kept: list[ImageMeta] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    reports: list[dict] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def report(self, kind: str, copies: list[ImageMeta], policy: str) -> None:
        paths = [m.path for m in copies]
        action = {KEEP: "kept", DROP: "dropped", FAIL: "rejected"}[policy]
        self.reports.append(
            {
                "kind": kind,
                "sha256": copies[0].sha256,
                "paths": paths,
                "labels": sorted({m.label for m in copies}),
                "action": action,
            }
        )
        if policy == FAIL:
            self.violations.append(f"{kind}: {summarize(paths)}")


def resolve_content_group(metas: Iterable[ImageMeta], policies: Policies) -> Resolution:
    """Applies the duplicate, conflicting-label and leakage policies to files with the same content.

    Conflicting labels are decided first (with ``drop`` every copy goes), then leakage per label (with
    ``drop`` the training copies go), then duplicates inside one class and split (with ``drop`` the first
    path in sorted order stays). ``fail`` keeps the copies and records a violation.
    """
    ordered = sorted(metas, key=lambda m: m.path)
    result = Resolution()
    labels = sorted({m.label for m in ordered})
    if len(labels) > 1:
        result.report(q.CONFLICTING_LABELS, ordered, policies.duplicates_across_classes)
        if policies.duplicates_across_classes == DROP:
            for meta in ordered:
                others = summarize(m.path for m in ordered if m is not meta)
                detail = f"same content labelled {summarize(labels, separator=' and ')} (also at {others})"
                result.quarantined.append(Quarantined(meta.path, q.CONFLICTING_LABELS, detail))
            return result
    for label in labels:
        copies = _resolve_leakage([m for m in ordered if m.label == label], policies.leakage, result)
        for split in (TRAIN, TEST):
            result.kept.extend(_resolve_in_class([m for m in copies if m.split == split], policies, result))
    return result


def _resolve_leakage(copies: list[ImageMeta], policy: str, result: Resolution) -> list[ImageMeta]:
    tests = [m for m in copies if m.split == TEST]
    trains = [m for m in copies if m.split == TRAIN]
    if not (tests and trains):
        return copies
    result.report(q.TRAIN_TEST_LEAKAGE, copies, policy)
    if policy != DROP:
        return copies
    for meta in trains:
        result.quarantined.append(Quarantined(meta.path, q.TRAIN_TEST_LEAKAGE, f"same content as {tests[0].path}"))
    return tests


def _resolve_in_class(copies: list[ImageMeta], policies: Policies, result: Resolution) -> list[ImageMeta]:
    if len(copies) < 2:
        return copies
    result.report(q.DUPLICATE_IN_CLASS, copies, policies.duplicates_in_class)
    if policies.duplicates_in_class != DROP:
        return copies
    for meta in copies[1:]:
        result.quarantined.append(Quarantined(meta.path, q.DUPLICATE_IN_CLASS, f"same content as {copies[0].path}"))
    return copies[:1]


# ---------------------------------------------------------------------------------------------------------------
# Subsetting, sharding, examples


def select_percent(metas: Iterable[ImageMeta], percent: float) -> tuple[list[ImageMeta], int]:
    """The first ceil(n * percent / 100) images of a class (at least one) in content-hash order, and how many
    were held out. Deterministic, and adding images to a class changes the selection only at the margin."""
    ordered = sorted(metas, key=lambda m: (m.sha256, m.path))
    if percent >= 100:
        return ordered, 0
    keep = max(1, math.ceil(len(ordered) * percent / 100))
    return ordered[:keep], len(ordered) - keep


def shard_count(examples: int, configured: int) -> int:
    """``configured`` shards (at most one per example), or one per EXAMPLES_PER_SHARD examples."""
    if configured > 0:
        return max(1, min(configured, examples))
    return max(1, math.ceil(examples / EXAMPLES_PER_SHARD))


def shard_of(meta: ImageMeta, count: int) -> int:
    return int(meta.id[:8], 16) % count


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}{f.TFRECORD_SUFFIX}"


def build_example(meta: ImageMeta, data: bytes, label_index: int) -> bytes:
    """The serialised example of one image; ``data`` are its original bytes (transcoded here if needed)."""
    if meta.transcode:
        data = images.transcode(data, images.ImageInfo(meta.format, meta.width, meta.height, meta.transcode))
    return f.make_example(
        {
            f.IMAGE: data,
            f.FORMAT: meta.format,
            f.HEIGHT: meta.height,
            f.WIDTH: meta.width,
            f.TRANSCODED: int(bool(meta.transcode)),
            f.SHA256: meta.sha256,
            f.LABEL: label_index,
            f.LABEL_TEXT: meta.label,
            f.ID: meta.id,
            f.SPLIT: meta.split,
            f.SOURCE_PATH: meta.path.encode("utf-8", "surrogateescape"),
        }
    )
