"""Finding the images of a dataset: the layout, the classes and every file, before anything is read.

Layouts (``data.layout``): ``split`` is ``train/<class>/...`` and ``test/<class>/...`` (without ``test/`` the
test split is drawn from ``train/`` by content hash); ``flat`` is ``<class>/...``, split by content hash;
``auto`` picks ``split`` when a ``train/`` folder exists. One wrapping folder around the dataset (as in most
archives) is looked through. Files in nested folders of a class belong to the class. Hidden entries (names
starting with ``.``, and ``__MACOSX``) are skipped and counted.

Local symbolic links are followed only when their target lies inside the data root (the others are quarantined
as ``symlink_outside_root``), and, for a link in or as a class folder, when the target neither lies in another
class folder nor holds one (``bird/catlink -> ../cat``, ``bird/up -> ..``): such a link is quarantined as
``symlink_to_other_class``, because the images it points at are ingested under their own class already, and
following it would label them twice (and the duplicate rule would then drop both copies as conflicting labels).

Class names are the folder names, NFC-normalised and trimmed (with a warning when more than normalisation
changed them); two folders that become one class (``cat`` and ``cat ``), two that differ only in letter case
(``Cat`` and ``cat``) and names with bidirectional controls or invisible spaces are refused. Local paths use
``os``; other URIs (gs://, ram://) use ``tf.io.gfile``.
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
from hubpipe.pipeline.core.errors import DataError

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
    link: bool = False  # a symbolic link (to a file or folder inside the data root when kind is dir or file)


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
    """Warns when a folder name was changed beyond Unicode normalisation; refuses two folders of one class, and
    two whose classes differ only in letter case. ``seen``: case-folded class -> the folder it came from."""
    shown = codepoints(printable(folder_name))
    first = seen.setdefault(unicodedata.normalize("NFC", label.casefold()), folder_name)
    if first != folder_name:
        both = f"class folders '{codepoints(printable(first))}' and '{shown}' in {where or 'the data root'}"
        if normalize_label(first) == label:
            raise DataError(
                f"{both} both become class '{label}' (names are trimmed and normalised); rename or merge them"
            )
        raise DataError(
            f"{both} differ only in letter case: two classes that read as one (and one folder on a case-insensitive "
            "file system); rename one of them"
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
        link = item.is_symlink()
        if link:
            target = os.path.realpath(item.path)
            if not os.path.exists(target):
                return Entry(item.name, item.path, "broken_link", link=True)
            if os.path.commonpath([self.real_base, target]) != self.real_base:
                return Entry(item.name, item.path, "outside_link", link=True)
        if item.is_dir():
            return Entry(item.name, item.path, "dir", link=link)
        if item.is_file():
            return Entry(item.name, item.path, "file", item.stat().st_size, link=link)
        return Entry(item.name, item.path, "special", link=link)

    def real(self, location: str) -> str:
        return os.path.realpath(location)


class GFileTree:
    """Directory entries through ``tf.io.gfile`` (gs://, ram://, ...); there are no symlinks there."""

    def __init__(self, base: str):
        from hubpipe.pipeline.core.runtime import import_tensorflow

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


def _ancestors(path: str) -> Iterator[str]:
    """The folders above ``path`` (a real, absolute path), nearest first."""
    parent = os.path.dirname(path)
    while parent != path:
        yield parent
        path, parent = parent, os.path.dirname(parent)


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
        walker.claim(top, prefix)
        walker.class_folders(top, prefix, HASH_SPLIT)
        return listing
    splits = {e.name: tree.entries(e.location) for e in top if e.name in (TRAIN, TEST) and e.kind == "dir"}
    for name, entries in splits.items():
        walker.claim(entries, f"{prefix}{name}/")
    for entry in top:
        if entry.name in splits:
            split = TRAIN if entry.name == TRAIN and TEST in names else (TEST if entry.name == TEST else HASH_SPLIT)
            walker.class_folders(splits[entry.name], f"{prefix}{entry.name}/", split)
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
        self.claimed: dict[str, str] = {}  # real path of a folder -> the class folder whose images it holds
        self.holders: dict[str, list[str]] = {}  # real path above claimed folders -> two of their class folders

    def claim(self, entries: list[Entry], prefix: str) -> None:
        """Registers the class folders among ``entries`` that are real folders, before any link is followed."""
        for entry in entries:
            if entry.kind == "dir" and not entry.link and not is_hidden(entry.name):
                self._claim(self.tree.real(entry.location), f"{prefix}{entry.name}")

    def _claim(self, real: str, folder: str) -> None:
        self.claimed.setdefault(real, folder)
        for above in _ancestors(real):
            below = self.holders.setdefault(above, [])
            if folder not in below and len(below) < 2:  # enough to name one that is not the linking class
                below.append(folder)

    def class_folders(self, entries: list[Entry], prefix: str, split: str) -> None:
        seen: dict[str, str] = {}  # case-folded class -> the folder name it came from
        for entry in entries:
            if entry.kind != "dir" or is_hidden(entry.name):
                self.outside(entry, prefix, "not in a class folder")
                continue
            folder = f"{prefix}{entry.name}"
            if self._crosses_classes(entry, folder, folder):
                continue
            label = normalize_label(entry.name)
            _check_label(entry.name, label, seen, prefix)
            before = len(self.listing.files)
            for item, path in self._files(entry, f"{folder}/", folder):
                self._add(item, path, label, split)
            if len(self.listing.files) == before:
                self.listing.empty_classes.append(printable(folder))

    def outside(self, entry: Entry, prefix: str, where: str) -> None:
        """An entry outside any class folder: each file in it is quarantined."""
        if is_hidden(entry.name):
            self.listing.hidden_skipped += 1
            return
        if self._crosses_classes(entry, f"{prefix}{entry.name}", ""):
            return
        if entry.kind != "dir":
            self._add(entry, f"{prefix}{entry.name}", "", None, where)
            return
        for item, path in self._files(entry, f"{prefix}{entry.name}/"):
            self._add(item, path, "", None, where)

    def _files(self, folder: Entry, prefix: str, owner: str = "") -> Iterator[tuple[Entry, str]]:
        """Non-directory entries below ``folder`` (depth first, sorted), with their source-relative paths.

        ``owner``: the class folder being walked ("" outside class folders); links that cross into other
        class folders are quarantined.
        """
        real = self.tree.real(folder.location)
        if real in self.visited:
            return
        self.visited.add(real)
        if owner and folder.link:
            self._claim(real, owner)
        for entry in self.tree.entries(folder.location):
            path = f"{prefix}{entry.name}"
            if is_hidden(entry.name):
                self.listing.hidden_skipped += 1
            elif self._crosses_classes(entry, path, owner):
                continue
            elif entry.kind == "dir":
                yield from self._files(entry, f"{path}/", owner)
            else:
                yield entry, path

    def _crosses_classes(self, entry: Entry, path: str, owner: str) -> bool:
        """Quarantines ``entry`` when it is a link into a class folder other than ``owner``, or to a folder that
        holds one (the data root, a split folder); True when it did."""
        if not entry.link or entry.kind not in ("dir", "file"):
            return False
        target = self.tree.real(entry.location)
        into = [self.claimed.get(folder, owner) for folder in (target, *_ancestors(target))]
        holds = self.holders.get(target, [])
        other = next((f for f in into if f != owner), "") or next((f for f in holds if f != owner), "")
        if not other:
            return False
        where = "into the class folder" if other in into else "to a folder that holds the class folder"
        detail = f"symbolic link {where} {printable(other)}; its images are ingested there"
        self.listing.quarantined.append(Quarantined(printable(path), q.SYMLINK_TO_OTHER_CLASS, detail))
        return True

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
