"""Finding the images of a dataset: the layout, the classes and every file, before anything is read.

Layouts (``data.layout``): ``split`` is ``train/<class>/...`` and ``test/<class>/...`` (without ``test/`` the
test split is drawn from ``train/`` by content hash); ``flat`` is ``<class>/...``, split by content hash;
``auto`` picks ``split`` when a ``train/`` folder exists. One wrapping folder around the dataset (as in most
archives) is looked through. Files in nested folders of a class belong to the class. Hidden entries (names
starting with ``.``, and ``__MACOSX``) are skipped and counted. Local symbolic links are followed only when
their target lies inside the data root; the others are quarantined. Class names are the folder names,
NFC-normalised and trimmed (with a warning when more than normalisation changed them); two folders that become
one class (``cat`` and ``cat ``) and names with bidirectional controls or invisible spaces are refused. Local
paths use ``os``; other URIs (gs://, ram://) use ``tf.io.gfile``.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field

from hubpipe.components.common.text import INVISIBLE_FORMATTING, codepoints
from hubpipe.components.ingest import quarantine as q
from hubpipe.components.ingest.quarantine import Quarantined
from hubpipe.pipeline.errors import DataError

LOG = logging.getLogger("hubpipe.ingest")

TRAIN, TEST = "train", "test"
HASH_SPLIT = ""  # the split is assigned from the content hash
MAX_UNWRAP = 4


@dataclass(frozen=True)
class Entry:
    name: str
    location: str  # local path or URI
    kind: str  # dir, file, outside_link, broken_link, special
    size: int = -1  # -1: unknown until read


@dataclass(frozen=True)
class SourceFile:
    """One candidate image. ``path`` is relative to the source, ``size`` -1 when not known yet."""

    uri: str
    path: str
    label: str
    split: str
    size: int = -1


@dataclass
class Listing:
    root: str
    layout: str
    files: list[SourceFile] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    empty_classes: list[str] = field(default_factory=list)
    hidden_skipped: int = 0

    def classes(self, split: str | None = None) -> list[str]:
        return sorted({f.label for f in self.files if split is None or f.split in (split, HASH_SPLIT)})


def is_hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def printable(name: str) -> str:
    """``name`` as valid UTF-8: bytes that were not UTF-8 on disk become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def normalize_label(folder_name: str) -> str:
    """The class name of a folder: NFC-normalised, trimmed, control characters replaced (labels are one line).

    Raises DataError for a name with bidirectional controls or invisible spaces: such a name displays as
    something else than it is, and is refused rather than silently changed.
    """
    if INVISIBLE_FORMATTING.search(printable(folder_name)):
        raise DataError(
            f"class folder '{codepoints(printable(folder_name))}' contains an invisible or bidirectional control "
            "character; rename the folder"
        )
    text = unicodedata.normalize("NFC", printable(folder_name))
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text).strip()
    return text or "_"


def _check_label(folder_name: str, label: str, seen: dict[str, str], where: str) -> None:
    """Warns when a folder name was changed beyond Unicode normalisation; refuses two folders of one class."""
    shown = codepoints(printable(folder_name))
    if seen.setdefault(label, folder_name) != folder_name:
        raise DataError(
            f"class folders '{codepoints(printable(seen[label]))}' and '{shown}' in {where or 'the data root'} "
            f"both become class '{label}' (names are trimmed and normalised); rename or merge them"
        )
    if unicodedata.normalize("NFC", printable(folder_name)) != label:
        LOG.warning("class folder '%s' is read as class '%s' (trimmed, control characters replaced)", shown, label)


class LocalTree:
    """Directory entries of a local folder; symlinks are resolved against the real data root."""

    def __init__(self, base: str):
        self.real_base = os.path.realpath(base)

    @staticmethod
    def join(folder: str, name: str) -> str:
        return os.path.join(folder, name)

    def entries(self, folder: str) -> list[Entry]:
        with os.scandir(folder) as scan:
            found = [self._entry(item) for item in scan]
        return sorted(found, key=lambda e: e.name)

    def _entry(self, item: os.DirEntry) -> Entry:
        if item.is_symlink():
            target = os.path.realpath(item.path)
            if not os.path.exists(target):
                return Entry(item.name, item.path, "broken_link")
            if os.path.commonpath([self.real_base, target]) != self.real_base:
                return Entry(item.name, item.path, "outside_link")
        if item.is_dir():
            return Entry(item.name, item.path, "dir")
        if item.is_file():
            return Entry(item.name, item.path, "file", item.stat().st_size)
        return Entry(item.name, item.path, "special")

    def real(self, location: str) -> str:
        return os.path.realpath(location)


class GFileTree:
    """Directory entries through ``tf.io.gfile`` (gs://, ram://, ...); there are no symlinks there."""

    def __init__(self, base: str):
        from hubpipe.pipeline.runtime import import_tensorflow

        self.gfile = import_tensorflow().io.gfile

    @staticmethod
    def join(folder: str, name: str) -> str:
        return f"{folder.rstrip('/')}/{name}"

    def entries(self, folder: str) -> list[Entry]:
        found = []
        for raw in self.gfile.listdir(folder):
            name = raw.rstrip("/")
            location = self.join(folder, name)
            kind = "dir" if raw.endswith("/") or self.gfile.isdir(location) else "file"
            found.append(Entry(name, location, kind))
        return sorted(found, key=lambda e: e.name)

    @staticmethod
    def real(location: str) -> str:
        return location


Tree = LocalTree | GFileTree


def open_tree(location: str) -> Tree:
    return GFileTree(location) if "://" in location else LocalTree(location)


def list_dataset(location: str, layout: str = "auto") -> Listing:
    """Every candidate file under ``location`` with its class and split, and what was set aside."""
    tree = open_tree(location)
    root, prefix = _unwrap(tree, location)
    top = tree.entries(root)
    names = {e.name: e for e in top if e.kind == "dir"}
    if layout == "auto":
        layout = "split" if TRAIN in names or TEST in names else "flat"
    if layout == "split" and TRAIN not in names:
        raise DataError(f"data.layout is split but there is no train/ folder in {root}")
    listing = Listing(root=root, layout=layout)
    walker = _Walker(tree, listing)
    if layout == "flat":
        walker.class_folders(top, prefix, HASH_SPLIT)
        return listing
    for entry in top:
        if entry.name in (TRAIN, TEST) and entry.kind == "dir":
            split = TRAIN if entry.name == TRAIN and TEST in names else (TEST if entry.name == TEST else HASH_SPLIT)
            walker.class_folders(tree.entries(entry.location), f"{prefix}{entry.name}/", split)
        else:
            walker.outside(entry, prefix, "not in train/ or test/")
    return listing


def _unwrap(tree: Tree, location: str) -> tuple[str, str]:
    """Looks through single wrapping folders: returns the data root and its path relative to the source."""
    folder, prefix = location, ""
    for _ in range(MAX_UNWRAP):
        visible = [e for e in tree.entries(folder) if not is_hidden(e.name)]
        if len(visible) != 1 or visible[0].kind != "dir" or visible[0].name in (TRAIN, TEST):
            break
        inner = tree.entries(visible[0].location)
        if not any(e.kind == "dir" and not is_hidden(e.name) for e in inner):
            break
        folder, prefix = visible[0].location, f"{prefix}{visible[0].name}/"
    return folder, prefix


class _Walker:
    """Walks class folders, filling a Listing."""

    def __init__(self, tree: Tree, listing: Listing):
        self.tree, self.listing = tree, listing
        self.visited: set[str] = set()

    def class_folders(self, entries: list[Entry], prefix: str, split: str) -> None:
        seen: dict[str, str] = {}  # class -> the folder name it came from
        for entry in entries:
            if entry.kind != "dir" or is_hidden(entry.name):
                self.outside(entry, prefix, "not in a class folder")
                continue
            label = normalize_label(entry.name)
            _check_label(entry.name, label, seen, prefix)
            before = len(self.listing.files)
            for item, path in self._files(entry, f"{prefix}{entry.name}/"):
                self._add(item, path, label, split)
            if len(self.listing.files) == before:
                self.listing.empty_classes.append(printable(f"{prefix}{entry.name}"))

    def outside(self, entry: Entry, prefix: str, where: str) -> None:
        """An entry outside any class folder: each file in it is quarantined."""
        if is_hidden(entry.name):
            self.listing.hidden_skipped += 1
            return
        if entry.kind != "dir":
            self._add(entry, f"{prefix}{entry.name}", "", None, where)
            return
        for item, path in self._files(entry, f"{prefix}{entry.name}/"):
            self._add(item, path, "", None, where)

    def _files(self, folder: Entry, prefix: str) -> Iterator[tuple[Entry, str]]:
        """Non-directory entries below ``folder`` (depth first, sorted), with their source-relative paths."""
        real = self.tree.real(folder.location)
        if real in self.visited:
            return
        self.visited.add(real)
        for entry in self.tree.entries(folder.location):
            if is_hidden(entry.name):
                self.listing.hidden_skipped += 1
            elif entry.kind == "dir":
                yield from self._files(entry, f"{prefix}{entry.name}/")
            else:
                yield entry, f"{prefix}{entry.name}"

    def _add(self, entry: Entry, path: str, label: str, split: str | None, where: str = "") -> None:
        reason = {
            "outside_link": (q.SYMLINK_OUTSIDE_ROOT, "symbolic link to a target outside the data root"),
            "broken_link": (q.UNREADABLE, "broken symbolic link"),
            "special": (q.NOT_A_REGULAR_FILE, "not a regular file (device, pipe or socket)"),
        }.get(entry.kind)
        if reason is None and split is None:
            reason = (q.OUTSIDE_CLASS_FOLDER, where)
        if reason is not None:
            self.listing.quarantined.append(Quarantined(printable(path), *reason))
            return
        self.listing.files.append(SourceFile(entry.location, printable(path), label, split or HASH_SPLIT, entry.size))
