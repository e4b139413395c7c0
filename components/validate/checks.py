"""Anomalies: TFDV's (translated into readable kinds) and the checks TFDV does not make itself.

An anomaly is an ``error`` (a policy of ``fail`` stops the run) or a ``warning`` (reported only). TFDV finds
unexpected classes and unsupported formats (string domains), images that are not supported or too large (the
image domain) and class-distribution drift (the L-infinity comparator). Added here: classes of the schema that
have no training images, splits without examples, and classes with fewer training images than
``validate.min_images_per_class`` (a warning).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from hubpipe.components.common import features as f
from hubpipe.components.common.text import summarize

ERROR, WARNING = "error", "warning"
SHOWN_VALUES = 5  # values of a long list shown in an anomaly's description

#: TFDV anomaly type (per feature, or any feature when None) -> our kind.
TFDV_KINDS = {
    ("ENUM_TYPE_UNEXPECTED_STRING_VALUES", f.LABEL_TEXT): "unexpected_classes",
    ("ENUM_TYPE_UNEXPECTED_STRING_VALUES", f.FORMAT): "unsupported_image_format",
    ("LOW_SUPPORTED_IMAGE_FRACTION", None): "unsupported_image_format",
    ("MAX_IMAGE_BYTE_SIZE_EXCEEDED", None): "image_over_byte_limit",
    ("COMPARATOR_L_INFTY_HIGH", None): "class_distribution_drift",
}


@dataclass(frozen=True)
class Anomaly:
    severity: str  # error or warning
    kind: str  # a short code, e.g. unexpected_classes
    feature: str
    description: str
    split: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def line(self) -> str:
        where = f" in {self.split}" if self.split else ""
        return f"{self.kind}{where} ({self.feature}): {self.description}"


def from_tfdv(anomalies: Any, split: str) -> list[Anomaly]:
    """Our anomalies from a TFDV Anomalies proto, one per reason."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    found = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        severity = WARNING if info.severity == anomalies_pb2.AnomalyInfo.WARNING else ERROR
        for reason in info.reason:
            type_name = anomalies_pb2.AnomalyInfo.Type.Name(reason.type)
            kind = TFDV_KINDS.get((type_name, feature)) or TFDV_KINDS.get((type_name, None)) or type_name.lower()
            description = _shortened((reason.description or reason.short_description).strip())
            found.append(Anomaly(severity, kind, feature, description, split))
    return found


def _shortened(description: str) -> str:
    """A TFDV description that lists values (``Examples contain values missing from the schema: a (<1%), b
    (<1%), ...``, every one of them) cut to the first few; ``anomalies_<split>.pbtxt`` keeps the whole text."""
    head, colon, listed = description.partition(": ")
    values = listed.split(", ")
    if not colon or len(values) <= SHOWN_VALUES:
        return description
    return f"{head} ({len(values):,}): {summarize(values, SHOWN_VALUES)}"


def class_counts(statistics: Any) -> dict[str, int]:
    """Examples per class name, from the rank histogram of ``label/text`` in a statistics list."""
    for feature in statistics.datasets[0].features if statistics.datasets else ():
        if feature.path.step == [f.LABEL_TEXT] or feature.name == f.LABEL_TEXT:
            buckets = feature.string_stats.rank_histogram.buckets
            return {bucket.label: int(bucket.sample_count) for bucket in buckets}
    return {}


def linf_distance(current: Mapping[str, int], previous: Mapping[str, int]) -> float:
    """The largest difference between the two normalised class distributions."""
    total_now, total_before = sum(current.values()), sum(previous.values())
    if not total_now or not total_before:
        return 0.0
    labels = set(current) | set(previous)
    return max(abs(current.get(k, 0) / total_now - previous.get(k, 0) / total_before) for k in labels)


def missing_classes(expected: Iterable[str] | None, counts: Mapping[str, int]) -> list[Anomaly]:
    missing = sorted(set(expected or ()) - {label for label, n in counts.items() if n > 0})
    if not missing:
        return []
    text = f"classes of the schema without training images ({len(missing):,}): {summarize(missing, SHOWN_VALUES)}"
    return [Anomaly(ERROR, "missing_classes", f.LABEL_TEXT, text, "train")]


def few_images(counts: Mapping[str, int], minimum: int) -> list[Anomaly]:
    few = sorted((label, n) for label, n in counts.items() if n < minimum)
    if not few:
        return []
    listed = summarize((f"{label} ({n})" for label, n in few), SHOWN_VALUES)
    text = f"classes with fewer than {minimum} training images ({len(few):,}): {listed}"
    return [Anomaly(WARNING, "few_images_per_class", f.LABEL_TEXT, text, "train")]


def empty_splits(examples: Mapping[str, int]) -> list[Anomaly]:
    return [
        Anomaly(ERROR, "empty_split", f.SPLIT, f"the {split} split has no examples", split)
        for split in f.SPLITS
        if not examples.get(split)
    ]
