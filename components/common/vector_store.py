"""The content-addressed vector store: feature vectors keyed by image content, shared by runs and machines.

A vector belongs to a *space*: one backbone (its fingerprint) with one preprocessing (input size, resize
method, input range) and one engine parity class (engines whose vectors agree within the parity check share a
class). Inside a space a vector is keyed by the image's content: the SHA-256 of the encoded image bytes the
model decodes (ingest stores it in every example, see :func:`content_key`). Labels and example ids are not
stored: they belong to a dataset, not to an image, so two datasets over the same images (or a dataset that
gained images) share the vectors they have in common. Layout::

    <store>/<space id>/space.json               what the space is (backbone, preprocessing, engine class)
    <store>/<space id>/shard-<id>.tfrecord      records of (content key, vector)
    <store>/<space id>/shard-<id>.json          count, dimension, the shard file's SHA-256, who wrote it

The store is ``train.vector_store`` when set (a path, or a ``gs://`` URI a cluster's workers can reach), else
``<hubpipe cache>/vectors`` (shared by every run on the machine, or on the volume that holds the cache).

**Shard format.** A TFRecord file (readable by ``tf.data.TFRecordDataset`` and Beam) whose records all have the
same length: the 32-byte binary content key followed by the vector as little-endian float32. Fixed-length
records make record ``i`` start at ``i * (16 + 32 + 4 * dimension)`` (a TFRecord frame adds a 12-byte header
and a 4-byte trailer), so a reader fetches any vector with one positioned read.

**Writes are atomic.** A shard is written into a staging folder ``.shard-<id>.tmp-<pid>`` that exists only
while its writer holds its owner lock (:func:`~hubpipe.pipeline.core.locking.owned_tmp`), fsynced, then moved
out: the ``.tfrecord`` first, the ``.json`` (which names the digest) last. A shard exists for readers only
once its JSON does. The next writer in the space removes what a killed writer left (its staging folder, and
a ``.tfrecord`` whose JSON never came), by these exact names and once the owner is dead. On a ``gs://``
store each file is one object written under a staging name and renamed (an object appears whole); nothing
is swept there.

**Reads are checked.** A reader opens a shard only when the file matches the SHA-256 its JSON records (the
check reads it once, and takes the keys from the same pass); a damaged or incomplete shard is ignored, logged
once per process, and the vectors it held are computed again by the next extraction (into a new shard).
Nothing here imports TensorFlow for a local store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import posixpath
import socket
import struct
import tempfile
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from hubpipe.components.common.checked_files import sha256_file
from hubpipe.pipeline.core.artifacts import stable_hash
from hubpipe.pipeline.core.errors import StageError, UsageError
from hubpipe.pipeline.core.locking import owned_tmp, remove_dead_tmp

LOG = logging.getLogger(__name__)

#: The default store folder under hubpipe's cache folder.
STORE_DIR = "vectors"
SPACE_FILE = "space.json"
SHARD_PREFIX = "shard-"
SHARD_SUFFIX = ".tfrecord"
RECORD_SUFFIX = ".json"
#: The staging folders of writers (``.shard-<id>.tmp-<pid>``); only these are swept.
STAGING_PATTERN = f".{SHARD_PREFIX}*.tmp-*"
KEY_BYTES = 32
#: TFRecord framing around each payload: length (8) + its masked CRC (4) before, payload CRC (4) after.
FRAME_HEADER, FRAME_TRAILER = 12, 4
#: Bump when the shard format or the space's identity changes.
FORMAT_VERSION = 1
#: Vectors per shard a writer aims for (about 20 MB at 1280 dimensions).
SHARD_VECTORS = 4096

#: Shards already reported as damaged in this process (reported once).
_REPORTED: set[str] = set()


@dataclass(frozen=True)
class VectorSpace:
    """What makes vectors comparable: backbone, preprocessing and engine parity class."""

    backbone_fingerprint: str
    input_size: int
    resize_method: str
    input_range: tuple[float, float]
    engine_class: str

    @property
    def id(self) -> str:
        return stable_hash({"format": FORMAT_VERSION, **self.describe()})[:32]

    def describe(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "input_range": list(self.input_range)}


@dataclass(frozen=True)
class ShardRecord:
    """A committed shard: its name (without suffix) and what its JSON says."""

    name: str
    count: int
    dimension: int
    sha256: str


def store_location(setting: str = "", cache: Path | None = None) -> str:
    """The store: ``train.vector_store`` when set, else ``vectors/`` in hubpipe's cache folder ``cache`` (an
    executor's ``ctx.cache_root``; looked up when not given, as outside a run)."""
    if setting:
        return setting.rstrip("/") if is_remote(setting) else os.path.abspath(os.path.expanduser(setting))
    if cache is None:
        from hubpipe.pipeline.core.cache_root import cache_root

        cache = cache_root()
    return str(cache / STORE_DIR)


def is_remote(path: str) -> bool:
    return "://" in path


def require_writable_store(setting: str) -> None:
    """:class:`UsageError` unless a configured local store can hold files: a file is created (and deleted) in it,
    or in its nearest existing folder when it does not exist yet. Remote stores are not probed; the default
    store is the cache folder's, which the runner checks."""
    if not setting or is_remote(setting):
        return
    path = Path(setting).expanduser()
    existing = next(folder for folder in (path, *path.parents) if folder.exists())
    problem = "" if existing.is_dir() else f"{existing} is not a folder"
    if not problem:
        try:
            with tempfile.TemporaryFile(dir=existing, prefix=".hubpipe-write-check-"):
                pass
        except OSError as exc:
            problem = f"cannot create a file in {existing} ({exc.strerror or exc})"
    if problem:
        raise UsageError(f"train.vector_store {setting} cannot be used: {problem}; set it to a writable folder")


def space_dir(store: str, space: VectorSpace) -> str:
    return store_space_dir(store, space.id)


def store_space_dir(store: str, space_id: str) -> str:
    """The folder of a space (by its id) in a store."""
    return posixpath.join(store, space_id) if is_remote(store) else os.path.join(store, space_id)


def content_key(sha256_hex: str | bytes, transcoded: bool, encoded: bytes) -> bytes:
    """The 32-byte key of an example's image: the SHA-256 of the encoded bytes the model decodes.

    Ingest stores the SHA-256 of the original file; when it kept the file's bytes (not transcoded) that is the
    digest of the bytes in the example and is used as it is; a transcoded image is keyed by its new bytes.
    """
    if transcoded:
        return hashlib.sha256(encoded).digest()
    text = sha256_hex.decode("ascii") if isinstance(sha256_hex, bytes) else sha256_hex
    return bytes.fromhex(text)


def key_bytes(key: bytes) -> bytes:
    """A key taken out of an ``S32`` array as its 32 bytes (numpy drops a ``bytes_`` value's trailing zeros)."""
    return bytes(key).ljust(KEY_BYTES, b"\0")


def record_length(dimension: int) -> int:
    """Bytes of one framed record in a shard of ``dimension``-long vectors."""
    return FRAME_HEADER + KEY_BYTES + 4 * dimension + FRAME_TRAILER


# --- writing -------------------------------------------------------------------------------------------------


def _masked_crc(data: bytes) -> bytes:
    import google_crc32c

    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def _write_records(handle: BinaryIO, keys: Sequence[bytes], vectors: np.ndarray) -> None:
    """TFRecord frames of ``key + vector`` payloads."""
    rows = np.ascontiguousarray(vectors, dtype="<f4")
    payload_length = KEY_BYTES + 4 * rows.shape[1]
    header = struct.pack("<Q", payload_length)
    framed_header = header + _masked_crc(header)
    for key, row in zip(keys, rows, strict=True):
        if len(key) != KEY_BYTES:
            raise ValueError(f"a content key has {len(key)} bytes, expected {KEY_BYTES}")
        payload = key + row.tobytes()
        handle.write(framed_header + payload + _masked_crc(payload))


def _fsynced(path: Path, write: Any) -> None:
    with open(path, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())


def write_shard(
    folder: str, keys: Sequence[bytes], vectors: np.ndarray, about: Mapping[str, Any] | None = None
) -> ShardRecord:
    """Writes one shard of ``keys`` and their ``vectors`` ([n, d] float32) into a space folder, atomically."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(keys) != len(vectors):
        raise ValueError(f"{len(keys)} keys for vectors of shape {vectors.shape}")
    name = f"{SHARD_PREFIX}{uuid.uuid4().hex}"
    record: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "count": len(keys),
        "dimension": int(vectors.shape[1]),
        "writer": {"pid": os.getpid(), "host": socket.gethostname()},
        **(about or {}),
    }
    if is_remote(folder):
        return _write_remote_shard(folder, name, keys, vectors, record)
    space = Path(folder)
    space.mkdir(parents=True, exist_ok=True)
    sweep(space)
    with owned_tmp(space / f".{name}.tmp-{os.getpid()}") as staging:
        staging.mkdir()
        _fsynced(staging / f"{name}{SHARD_SUFFIX}", lambda handle: _write_records(handle, keys, vectors))
        record["sha256"] = sha256_file(staging / f"{name}{SHARD_SUFFIX}")
        content = json.dumps(record, indent=1).encode()
        _fsynced(staging / f"{name}{RECORD_SUFFIX}", lambda handle: handle.write(content))
        os.replace(staging / f"{name}{SHARD_SUFFIX}", space / f"{name}{SHARD_SUFFIX}")
        os.replace(staging / f"{name}{RECORD_SUFFIX}", space / f"{name}{RECORD_SUFFIX}")  # the commit
    return ShardRecord(name, record["count"], record["dimension"], record["sha256"])


def _write_remote_shard(
    folder: str, name: str, keys: Sequence[bytes], vectors: np.ndarray, record: dict[str, Any]
) -> ShardRecord:
    from hubpipe.components.common import storage

    buffer = io.BytesIO()
    _write_records(buffer, keys, vectors)
    data = buffer.getvalue()
    record["sha256"] = hashlib.sha256(data).hexdigest()
    gfile = storage._gfile()
    gfile.makedirs(folder)
    for suffix, content in ((SHARD_SUFFIX, data), (RECORD_SUFFIX, json.dumps(record, indent=1).encode())):
        target = posixpath.join(folder, f"{name}{suffix}")
        staging = posixpath.join(folder, f".{name}{suffix}.tmp-{uuid.uuid4().hex[:12]}")
        with gfile.GFile(staging, "wb") as handle:
            handle.write(content)
        gfile.rename(staging, target, overwrite=True)
    return ShardRecord(name, record["count"], record["dimension"], record["sha256"])


def sweep(space: Path) -> list[Path]:
    """Removes what killed writers left in a local space folder: staging folders whose owner is dead, and the
    ``.tfrecord`` each of them had already moved out without its JSON."""
    removed = remove_dead_tmp(space, STAGING_PATTERN)
    for staging in removed:
        name = staging.name[1:].rsplit(".tmp-", 1)[0]
        orphan = space / f"{name}{SHARD_SUFFIX}"
        if orphan.exists() and not (space / f"{name}{RECORD_SUFFIX}").exists():
            orphan.unlink()
            removed.append(orphan)
    return removed


def write_space_record(folder: str, space: VectorSpace) -> None:
    """Writes ``space.json`` (what the space is, for people looking at the store) when it is not there."""
    from hubpipe.components.common import storage

    path = storage.join(folder, SPACE_FILE)
    if not storage.exists(path):
        storage.write_text_atomic(path, json.dumps({"format": FORMAT_VERSION, **space.describe()}, indent=1))


class ShardWriter:
    """Collects vectors and writes a shard every :data:`SHARD_VECTORS` of them (and at :meth:`close`)."""

    def __init__(self, folder: str, about: Mapping[str, Any] | None = None, shard_vectors: int = SHARD_VECTORS):
        self.folder, self.about, self.shard_vectors = folder, dict(about or {}), shard_vectors
        self._keys: list[bytes] = []
        self._vectors: list[np.ndarray] = []
        self.written: list[ShardRecord] = []

    def add(self, key: bytes, vector: np.ndarray) -> None:
        self._keys.append(key)
        self._vectors.append(np.asarray(vector, dtype=np.float32))
        if len(self._keys) >= self.shard_vectors:
            self.flush()

    def flush(self) -> None:
        """Writes what was added as a shard; a machine error (full disk, read-only store) is one line."""
        if not self._keys:
            return
        try:
            self.written.append(write_shard(self.folder, self._keys, np.stack(self._vectors), self.about))
        except OSError as exc:
            raise StageError(f"cannot write to the vector store {self.folder}: {exc.strerror or exc}") from None
        self._keys, self._vectors = [], []

    close = flush


# --- reading -------------------------------------------------------------------------------------------------


def _read_file(path: str) -> bytes:
    if not is_remote(path):
        return Path(path).read_bytes()
    from hubpipe.components.common import storage

    return storage._gfile().GFile(path, "rb").read()


def _list_records(folder: str) -> list[str]:
    if is_remote(folder):
        from hubpipe.components.common import storage

        names = storage.list_names(folder)
    else:
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            return []
    return [n[: -len(RECORD_SUFFIX)] for n in names if n.startswith(SHARD_PREFIX) and n.endswith(RECORD_SUFFIX)]


def _join(folder: str, name: str) -> str:
    return posixpath.join(folder, name) if is_remote(folder) else os.path.join(folder, name)


def _checked_shard(folder: str, name: str) -> tuple[ShardRecord, np.ndarray] | str:
    """The shard's record and its keys ``[count]`` (``S32``), or what is wrong with it."""
    try:
        record = json.loads(_read_file(_join(folder, name + RECORD_SUFFIX)))
        shard = ShardRecord(name, int(record["count"]), int(record["dimension"]), str(record["sha256"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable {name}{RECORD_SUFFIX} ({exc})"
    try:
        data = _read_file(_join(folder, name + SHARD_SUFFIX))
    except OSError as exc:
        return f"{name}{SHARD_SUFFIX}: {exc.strerror or exc}"
    length = record_length(shard.dimension)
    if len(data) != shard.count * length:
        return f"{name}{SHARD_SUFFIX} holds {len(data)} bytes, expected {shard.count * length}"
    if hashlib.sha256(data).hexdigest() != shard.sha256:
        return f"{name}{SHARD_SUFFIX} does not match its recorded SHA-256"
    frames = np.frombuffer(data, np.uint8).reshape(shard.count, length)
    keys = frames[:, FRAME_HEADER : FRAME_HEADER + KEY_BYTES].copy().view(f"S{KEY_BYTES}").ravel()
    return shard, keys


def _report_damage(folder: str, name: str, problem: str) -> None:
    path = _join(folder, name)
    if path not in _REPORTED:
        _REPORTED.add(path)
        LOG.warning(
            "vector store: shard %s is damaged or incomplete (%s): not used, its vectors are computed again",
            path,
            problem,
        )


@dataclass
class StoreIndex:
    """The checked shards of one space folder, and where each content key's vector is.

    ``keys`` is sorted (``S32``), with ``shard`` (index into ``shards``) and ``row`` aligned; a key stored in
    several shards (two runs that embedded the same image at once) appears once. About 40 bytes per vector.
    """

    folder: str
    shards: list[ShardRecord]
    keys: np.ndarray
    shard: np.ndarray
    row: np.ndarray
    damaged: list[str]

    @property
    def dimension(self) -> int | None:
        return self.shards[0].dimension if self.shards else None

    def __len__(self) -> int:
        return len(self.keys)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """A bool per key (``S32`` array): stored or not."""
        if not len(self.keys):
            return np.zeros(len(keys), bool)
        found = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return self.keys[found] == keys

    def locate(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(shard, row)`` of each key; raises KeyError naming the first key that is not stored."""
        present = self.contains(keys)
        if not present.all():
            raise KeyError(key_bytes(keys[~present][0]).hex())
        found = np.searchsorted(self.keys, keys)
        return self.shard[found], self.row[found]


def open_index(folder: str, known: StoreIndex | None = None) -> StoreIndex:
    """The index of a space folder's committed shards that pass their check (``known``'s shards are not read
    again)."""
    reused = {shard.name for shard in known.shards} | set(known.damaged) if known is not None else set()
    shards: list[ShardRecord] = []
    parts: list[tuple[np.ndarray, int]] = []
    damaged: list[str] = []
    for name in _list_records(folder):
        if name in reused:
            continue
        checked = _checked_shard(folder, name)
        if isinstance(checked, str):
            _report_damage(folder, name, checked)
            damaged.append(name)
            continue
        if shards and checked[0].dimension != shards[0].dimension:
            _report_damage(folder, name, f"{checked[0].dimension} dimensions, others {shards[0].dimension}")
            damaged.append(name)
            continue
        shards.append(checked[0])
        parts.append((checked[1], len(shards) - 1))
    return _build_index(folder, known, shards, parts, damaged)


def _build_index(
    folder: str,
    known: StoreIndex | None,
    shards: list[ShardRecord],
    parts: list[tuple[np.ndarray, int]],
    damaged: list[str],
) -> StoreIndex:
    offset = len(known.shards) if known is not None else 0
    keys = [known.keys] if known is not None else []
    shard = [known.shard] if known is not None else []
    row = [known.row] if known is not None else []
    for shard_keys, number in parts:
        keys.append(shard_keys)
        shard.append(np.full(len(shard_keys), number + offset, np.int32))
        row.append(np.arange(len(shard_keys), dtype=np.int32))
    all_shards = (known.shards if known is not None else []) + shards
    if not keys:
        empty = np.zeros(0, f"S{KEY_BYTES}")
        return StoreIndex(folder, all_shards, empty, np.zeros(0, np.int32), np.zeros(0, np.int32), damaged)
    all_keys = np.concatenate(keys)
    unique, first = np.unique(all_keys, return_index=True)
    return StoreIndex(
        folder,
        all_shards,
        unique,
        np.concatenate(shard)[first],
        np.concatenate(row)[first],
        (known.damaged if known is not None else []) + damaged,
    )


class VectorReader:
    """Reads vectors by ``(shard, row)`` with positioned reads, one open file per shard (kept open)."""

    def __init__(self, index: StoreIndex):
        self.folder, self.shards = index.folder, list(index.shards)
        self.dimension = index.dimension or 0
        self._length = record_length(self.dimension)
        self._files: dict[int, Any] = {}

    def _file(self, number: int) -> Any:
        handle = self._files.get(number)
        if handle is None:
            path = _join(self.folder, self.shards[number].name + SHARD_SUFFIX)
            if is_remote(path):
                from hubpipe.components.common import storage

                handle = storage._gfile().GFile(path, "rb")
            else:
                handle = open(path, "rb", buffering=0)  # noqa: SIM115 - kept open until close()
            self._files[number] = handle
        return handle

    def read(self, shard: np.ndarray, row: np.ndarray, keys: np.ndarray | None = None) -> np.ndarray:
        """The vectors at ``(shard, row)`` ([n, d] float32); with ``keys``, checks each record's key."""
        out = np.empty((len(row), self.dimension), np.float32)
        payload = KEY_BYTES + 4 * self.dimension
        for i, (number, position) in enumerate(zip(shard.tolist(), row.tolist(), strict=True)):
            handle = self._file(number)
            offset = position * self._length + FRAME_HEADER
            if isinstance(handle, io.FileIO):
                data = os.pread(handle.fileno(), payload, offset)
            else:
                handle.seek(offset)
                data = handle.read(payload)
            if len(data) != payload or (keys is not None and data[:KEY_BYTES] != key_bytes(keys[i])):
                raise OSError(f"vector store shard {self.shards[number].name} changed while it was read")
            out[i] = np.frombuffer(data, "<f4", offset=KEY_BYTES)
        return out

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()


def read_vectors(index: StoreIndex, keys: np.ndarray, chunk: int = 4096) -> Iterable[np.ndarray]:
    """The vectors of ``keys`` (``S32``, all stored) in their order, ``chunk`` rows at a time."""
    reader = VectorReader(index)
    try:
        for start in range(0, len(keys), chunk):
            part = keys[start : start + chunk]
            shard, row = index.locate(part)
            yield reader.read(shard, row, part)
    finally:
        reader.close()
