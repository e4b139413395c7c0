"""Why a file was not ingested: short, stable reason codes and the quarantine entry that carries them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

# Reading and decoding
EMPTY_FILE = "empty_file"
FILE_TOO_LARGE = "file_too_large"
NOT_AN_IMAGE = "not_an_image"
TRUNCATED = "truncated"
CORRUPT = "corrupt"
TOO_MANY_PIXELS = "too_many_pixels"
UNSUPPORTED_FORMAT = "unsupported_format"
ANIMATED = "animated"
UNREADABLE = "unreadable"
CHANGED_DURING_INGEST = "changed_during_ingest"
# Where the file is
HIDDEN_FILE = "hidden_file"
OUTSIDE_CLASS_FOLDER = "outside_class_folder"
SYMLINK_OUTSIDE_ROOT = "symlink_outside_root"
SYMLINK_TO_OTHER_CLASS = "symlink_to_other_class"
NOT_A_REGULAR_FILE = "not_a_regular_file"
UNSAFE_ARCHIVE_MEMBER = "unsafe_archive_member"
CORRUPT_ARCHIVE_MEMBER = "corrupt_archive_member"
NAME_TOO_LONG = "name_too_long"
# Content shared between files, and classes
DUPLICATE_IN_CLASS = "duplicate_in_class"
CONFLICTING_LABELS = "conflicting_labels"
TRAIN_TEST_LEAKAGE = "train_test_leakage"
CLASS_NOT_IN_TRAIN = "class_not_in_train"

REASONS = (
    EMPTY_FILE,
    FILE_TOO_LARGE,
    NOT_AN_IMAGE,
    TRUNCATED,
    CORRUPT,
    TOO_MANY_PIXELS,
    UNSUPPORTED_FORMAT,
    ANIMATED,
    UNREADABLE,
    CHANGED_DURING_INGEST,
    HIDDEN_FILE,
    OUTSIDE_CLASS_FOLDER,
    SYMLINK_OUTSIDE_ROOT,
    SYMLINK_TO_OTHER_CLASS,
    NOT_A_REGULAR_FILE,
    UNSAFE_ARCHIVE_MEMBER,
    CORRUPT_ARCHIVE_MEMBER,
    NAME_TOO_LONG,
    DUPLICATE_IN_CLASS,
    CONFLICTING_LABELS,
    TRAIN_TEST_LEAKAGE,
    CLASS_NOT_IN_TRAIN,
)


@dataclass(frozen=True)
class Quarantined:
    """A file that was not ingested. ``path`` is relative to the source (the folder or archive given)."""

    path: str
    reason: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Quarantined:
        return cls(path=data["path"], reason=data["reason"], detail=data.get("detail", ""))


def count_by_reason(entries: Iterable[Quarantined]) -> dict[str, int]:
    """Counts per reason, most frequent first (ties by name)."""
    counts = Counter(entry.reason for entry in entries)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def summary_line(counts: dict[str, int]) -> str:
    """``"3 not_an_image, 1 truncated"``, or ``"none"``."""
    return ", ".join(f"{count} {reason}" for reason, count in counts.items()) or "none"
