"""Reading torch state dicts without torch: real weights, both file layouts, and hostile pickles.

``data/tiny_state_dict_{legacy,zip}.pt`` were written once with torch 2.13::

    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    sd = OrderedDict(weight=base.t(), row=base[1], count=torch.tensor(7), half=torch.tensor([0.5, -2.0]).half())
    torch.save(sd, "tiny_state_dict_legacy.pt", _use_new_zipfile_serialization=False)
    torch.save(sd, "tiny_state_dict_zip.pt")
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hubpipe.components.backbones.torch_checkpoint import (
    LEGACY_MAGIC_NUMBER,
    UnsafeCheckpointError,
    load_state_dict,
)
from hubpipe.pipeline.core.errors import DataError

DATA = Path(__file__).parent / "data"
TINY_WEIGHT = np.arange(12, dtype=np.float32).reshape(3, 4).T


class _Exploit:
    """Pickles as a call to os.system: what a malicious checkpoint would contain."""

    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned > /dev/null",))


#: Pickled at import time, before a test replaces os.system with a recorder.
EXPLOIT_PICKLE = pickle.dumps({"w": _Exploit()}, protocol=2)


def _legacy_stream(data_pickle: bytes, keys: list[str] | None = None, storages: bytes = b"") -> bytes:
    head = b"".join(
        pickle.dumps(obj, protocol=2)
        for obj in (LEGACY_MAGIC_NUMBER, 1001, {"protocol_version": 1001, "little_endian": True})
    )
    return head + data_pickle + pickle.dumps(keys or [], protocol=2) + storages


@pytest.fixture
def no_system_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(os, "system", lambda command: calls.append(command) or 0)
    return calls


@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_reads_both_layouts_with_views_and_dtypes(layout: str) -> None:
    state = load_state_dict(DATA / f"tiny_state_dict_{layout}.pt")  # written by torch 2.13, see test data
    assert list(state) == ["weight", "row", "count", "half"]
    np.testing.assert_array_equal(state["weight"], TINY_WEIGHT)  # a transposed (non-contiguous) view
    np.testing.assert_array_equal(state["row"], [4.0, 5.0, 6.0, 7.0])  # a view at offset 4 of the same storage
    assert state["count"].shape == () and state["count"].dtype == np.int64 and int(state["count"]) == 7
    assert state["half"].dtype == np.float16 and state["half"].tolist() == [0.5, -2.0]
    assert state["weight"].flags.writeable  # copies, not views into the file buffer


def test_reads_the_real_efficientnet_lite0_checkpoint(lite0_weights: Path) -> None:
    state = load_state_dict(lite0_weights)
    assert len(state) == 296
    assert sum(a.size for a in state.values()) == 4_694_073
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.weight"].dtype == np.float32
    assert np.all(state["_bn1.running_var"] > 0)


def test_rejects_a_pickle_that_calls_os_system(tmp_path: Path, no_system_calls: list[str]) -> None:
    path = tmp_path / "evil.pth"
    path.write_bytes(_legacy_stream(EXPLOIT_PICKLE))
    with pytest.raises(UnsafeCheckpointError, match=r"posix\.system|os\.system"):
        load_state_dict(path)
    assert no_system_calls == []


def test_rejects_hostile_globals_in_a_zip_checkpoint(tmp_path: Path) -> None:
    evil = b"\x80\x02cbuiltins\neval\nq\x00X\x04\x00\x00\x001+1q\x01\x85q\x02Rq\x03."
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", evil)
    with pytest.raises(UnsafeCheckpointError, match=r"builtins\.eval"):
        load_state_dict(path)


def test_rejects_unknown_persistent_ids(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=2)
    pickler.persistent_id = lambda obj: ("module", "x", "y", "z") if obj == "m" else None  # type: ignore[method-assign]
    pickler.dump({"w": "m"})
    path = tmp_path / "odd.pth"
    path.write_bytes(_legacy_stream(buffer.getvalue()))
    with pytest.raises(UnsafeCheckpointError, match="persistent id"):
        load_state_dict(path)


def test_truncated_and_foreign_files_are_data_errors(tmp_path: Path) -> None:
    whole = (DATA / "tiny_state_dict_legacy.pt").read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(whole[:-10])
    with pytest.raises(DataError, match="truncated"):
        load_state_dict(truncated)
    foreign = tmp_path / "numbers.pth"
    foreign.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DataError, match="magic number"):
        load_state_dict(foreign)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(struct.pack("<8q", *range(8)))
    with pytest.raises(DataError):
        load_state_dict(garbage)


class _Storage:
    """A storage marker: pickled through a persistent id, as torch does."""


def _tensor_pickle(monkeypatch: pytest.MonkeyPatch, shape: tuple, stride: tuple, numel: int) -> bytes:
    """A data pickle of ``{"w": tensor}`` built as torch builds it, with any view over a float storage."""
    torch = type(os)("torch")
    utils = type(os)("torch._utils")
    torch.FloatStorage = type("FloatStorage", (), {"__module__": "torch"})

    def _rebuild_tensor_v2(*args: object) -> None:
        raise AssertionError("never called while pickling")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    monkeypatch.setitem(__import__("sys").modules, "torch", torch)
    monkeypatch.setitem(__import__("sys").modules, "torch._utils", utils)
    storage = _Storage()

    class _Tensor:
        def __reduce__(self) -> tuple:
            return (_rebuild_tensor_v2, (storage, 0, shape, stride, False, {}))

    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=2)
    pickler.persistent_id = lambda obj: ("storage", torch.FloatStorage, "0", "cpu", numel) if obj is storage else None  # type: ignore[method-assign]
    pickler.dump({"w": _Tensor()})
    return buffer.getvalue()


def test_reads_a_crafted_plain_tensor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "plain.pth"
    storage = struct.pack("<q", 4) + np.arange(4, dtype="<f4").tobytes()
    path.write_bytes(_legacy_stream(_tensor_pickle(monkeypatch, (2, 2), (2, 1), 4), ["0"], storage))
    np.testing.assert_array_equal(load_state_dict(path)["w"], [[0.0, 1.0], [2.0, 3.0]])


@pytest.mark.parametrize(
    ("shape", "stride", "message"),
    [((10_000_000,), (0,), "zero stride"), ((3000, 3000), (1, 1), "more elements than its storage")],
)
def test_rejects_views_that_amplify_a_tiny_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: tuple, stride: tuple, message: str
) -> None:
    path = tmp_path / "bomb.pth"
    storage = struct.pack("<q", 6000) + np.zeros(6000, dtype="<f4").tobytes()
    path.write_bytes(_legacy_stream(_tensor_pickle(monkeypatch, shape, stride, 6000), ["0"], storage))
    with pytest.raises(UnsafeCheckpointError, match=message):
        load_state_dict(path)


def test_rejects_a_call_to_a_storage_class(tmp_path: Path) -> None:
    reduce_storage = b"\x80\x02}q\x00X\x01\x00\x00\x00wctorch\nFloatStorage\nq\x01)Rq\x02s."
    path = tmp_path / "reduce.pth"
    path.write_bytes(_legacy_stream(reduce_storage))
    with pytest.raises(UnsafeCheckpointError, match=r"calls torch\.FloatStorage"):
        load_state_dict(path)
