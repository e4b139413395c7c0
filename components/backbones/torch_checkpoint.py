"""Reads PyTorch ``state_dict`` checkpoints into NumPy arrays without torch and without running foreign code.

``torch.save`` writes pickles, and unpickling an untrusted pickle can execute anything. This reader uses a
restricted :class:`pickle.Unpickler` whose ``find_class`` only resolves what a plain state dict needs
(``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and the typed storage classes); anything
else (``os.system``, ``builtins.eval``, ...) is refused with :class:`UnsafeCheckpointError` before it runs.
Nothing from torch is imported: those names map to local stand-ins.

Two layouts are understood:

* the legacy stream (``_use_new_zipfile_serialization=False``, torch < 1.6): a magic-number pickle, a
  protocol pickle, a sys-info pickle, the data pickle, a pickle with the list of storage keys, then each
  storage as an int64 element count followed by its raw little-endian bytes;
* the zip archive (torch >= 1.6): ``<root>/data.pkl`` plus one raw file per storage, ``<root>/data/<key>``.
"""

from __future__ import annotations

import collections
import io
import logging
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from hubpipe.pipeline.core.errors import DataError

LOG = logging.getLogger(__name__)

#: First pickle of a legacy torch file.
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
#: Storage class name (as pickled, module ``torch``) -> little-endian NumPy dtype.
STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class UnsafeCheckpointError(DataError):
    """A checkpoint that refers to something other than tensors and ordered dicts."""


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for ``torch.<X>Storage``: only remembers the element type."""

    name: str
    dtype: np.dtype

    def __call__(self, *_args: Any) -> Any:
        """A pickle that calls (REDUCE) a storage class instead of naming it in a persistent id is not a state dict."""
        raise UnsafeCheckpointError(f"checkpoint calls torch.{self.name}, which a weights file must not do")


@dataclass(frozen=True)
class _StorageRef:
    """A storage named by a persistent id; its bytes are read after the data pickle."""

    key: str
    dtype: np.dtype
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    """What ``_rebuild_tensor_v2`` was asked to build: a strided view of a storage (strides in elements)."""

    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage: _StorageRef, offset: int, shape: Any, stride: Any, *_ignored: Any) -> _TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``; ``requires_grad``, hooks and metadata are dropped."""
    if not isinstance(storage, _StorageRef):
        raise UnsafeCheckpointError("checkpoint rebuilds a tensor from something that is not a storage")
    return _TensorRef(storage, int(offset), tuple(int(s) for s in shape), tuple(int(s) for s in stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a state dict needs; storages come from persistent ids."""

    def __init__(self, file: IO[bytes]):
        super().__init__(file)
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name, STORAGE_DTYPES[name])
        raise UnsafeCheckpointError(f"checkpoint refers to {module}.{name}, which a weights file must not need")

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] not in ("storage", b"storage"):
            raise UnsafeCheckpointError(f"unexpected persistent id in checkpoint: {str(pid)[:80]}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError("checkpoint storage of an unknown type")
        if len(pid) > 5 and pid[5] is not None:
            raise DataError("checkpoint uses storage views (torch < 0.4 format), which are not supported")
        key = key.decode() if isinstance(key, bytes) else str(key)
        ref = self.storages.setdefault(key, _StorageRef(key, storage_type.dtype, int(numel)))
        return ref


def _check_no_amplification(ref: _TensorRef, storage_size: int) -> None:
    """Rejects views that would make a small file expand into a large array.

    torch never saves a state-dict tensor with a zero stride or with more elements than its storage; such a view
    (a broadcast or overlapping one) lets a few bytes of storage become gigabytes once copied out.
    """
    if any(s == 0 and n > 1 for n, s in zip(ref.shape, ref.stride, strict=True)):
        raise UnsafeCheckpointError("checkpoint tensor with a zero stride (a broadcast view of its storage)")
    if int(np.prod(ref.shape, dtype=object)) > storage_size:
        raise UnsafeCheckpointError("checkpoint tensor has more elements than its storage (an overlapping view)")


def _materialize(ref: _TensorRef, storages: dict[str, np.ndarray]) -> np.ndarray:
    """Copies a tensor out of its storage, checking that the strided view stays inside it."""
    data = storages[ref.storage.key]
    if len(ref.shape) != len(ref.stride) or min((*ref.shape, *ref.stride, ref.offset)) < 0:
        raise DataError("checkpoint tensor with a malformed size, stride or offset")
    if not all(ref.shape):  # an empty tensor
        return np.zeros(ref.shape, data.dtype.newbyteorder("="))
    _check_no_amplification(ref, data.size)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride, strict=True))
    if last >= data.size:
        raise DataError(f"checkpoint tensor reaches past its storage ({last} >= {data.size})")
    strides = tuple(s * data.itemsize for s in ref.stride)
    view = np.lib.stride_tricks.as_strided(data[ref.offset :], shape=ref.shape, strides=strides, writeable=False)
    return np.array(view, dtype=data.dtype.newbyteorder("="))


def _plain_state_dict(obj: Any, storages: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not isinstance(obj, dict):
        raise DataError(f"checkpoint holds a {type(obj).__name__}, not a state dict")
    result: dict[str, np.ndarray] = {}
    for name, value in obj.items():
        if not isinstance(value, _TensorRef):
            raise DataError(f"checkpoint entry {name!r} is not a tensor")
        result[str(name)] = _materialize(value, storages)
    return result


def _read_exact(file: IO[bytes], size: int, what: str) -> bytes:
    data = file.read(size)
    if len(data) != size:
        raise DataError(f"checkpoint is truncated while reading {what}")
    return data


def _load_legacy(file: IO[bytes]) -> dict[str, np.ndarray]:
    if _RestrictedUnpickler(file).load() != LEGACY_MAGIC_NUMBER:
        raise DataError("not a torch checkpoint (wrong magic number)")
    _RestrictedUnpickler(file).load()  # protocol version
    sys_info = _RestrictedUnpickler(file).load()
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise DataError("big-endian torch checkpoints are not supported")
    unpickler = _RestrictedUnpickler(file)
    obj = unpickler.load()
    keys = _RestrictedUnpickler(file).load()
    if not isinstance(keys, list) or set(map(str, keys)) != set(unpickler.storages):
        raise DataError("checkpoint storage list does not match its tensors")
    storages: dict[str, np.ndarray] = {}
    for key in map(str, keys):
        ref = unpickler.storages[key]
        (numel,) = struct.unpack("<q", _read_exact(file, 8, "a storage header"))
        if numel != ref.numel:
            raise DataError(f"checkpoint storage {key} has {numel} elements, expected {ref.numel}")
        raw = _read_exact(file, numel * ref.dtype.itemsize, f"storage {key}")
        storages[key] = np.frombuffer(raw, dtype=ref.dtype)
    return _plain_state_dict(obj, storages)


def _load_zip(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise DataError(f"{path.name}: a torch zip checkpoint has exactly one data.pkl")
        root = pickles[0][: -len("data.pkl")]
        unpickler = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])))
        obj = unpickler.load()
        storages: dict[str, np.ndarray] = {}
        for key, ref in unpickler.storages.items():
            raw = archive.read(f"{root}data/{key}")
            if len(raw) != ref.numel * ref.dtype.itemsize:
                raise DataError(f"checkpoint storage {key} has {len(raw)} bytes, expected {ref.numel} elements")
            storages[key] = np.frombuffer(raw, dtype=ref.dtype)
    return _plain_state_dict(obj, storages)


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Reads a torch ``state_dict`` file into ``{name: array}`` (shapes and dtypes as in torch).

    Raises :class:`UnsafeCheckpointError` for a pickle that refers to anything but tensors and ordered dicts,
    and :class:`DataError` for a file that is not a readable state dict.
    """
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path)
        with path.open("rb") as file:
            return _load_legacy(file)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, struct.error) as exc:
        raise DataError(f"{path.name} is not a readable torch state dict: {exc}") from exc
