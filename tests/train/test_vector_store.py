"""The content-addressed vector store: round trip, atomic writes and the sweep, damaged shards, sharing."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from hubpipe.components.common import vector_store as vs
from hubpipe.components.common.split_vectors import SplitKeys, join_split


def keys_of(*names: str) -> list[bytes]:
    return [hashlib.sha256(name.encode()).digest() for name in names]


def test_round_trip_by_key_in_any_order_and_readable_by_tf_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    first, second = rng.standard_normal((5, 7)).astype(np.float32), rng.standard_normal((3, 7)).astype(np.float32)
    keys = keys_of(*"abcdefgh")
    vs.write_shard(str(tmp_path), keys[:5], first)
    shard = vs.write_shard(str(tmp_path), keys[5:], second)
    index = vs.open_index(str(tmp_path))
    assert len(index) == 8 and index.dimension == 7 and not index.damaged
    wanted = np.array([keys[6], keys[0], keys[4], keys[0]], dtype="S32")
    (vectors,) = list(vs.read_vectors(index, wanted))
    np.testing.assert_array_equal(vectors, np.stack([second[1], first[0], first[4], first[0]]))
    record = json.loads((tmp_path / f"{shard.name}.json").read_text())
    assert record["count"] == 3 and record["dimension"] == 7 and record["writer"]["pid"] == os.getpid()

    from hubpipe.pipeline.core.runtime import import_tensorflow

    tf = import_tensorflow()  # TensorFlow's reader checks the frames' CRCs: the shard is a real TFRecord file
    payloads = [r.numpy() for r in tf.data.TFRecordDataset(str(tmp_path / f"{shard.name}.tfrecord"))]
    assert [p[:32] for p in payloads] == keys[5:]
    np.testing.assert_array_equal(np.frombuffer(payloads[2][32:], "<f4"), second[2])


def test_join_keeps_example_order_and_names_a_missing_key(tmp_path: Path) -> None:
    keys = keys_of("x", "y", "z")
    vs.write_shard(str(tmp_path), keys, np.eye(3, dtype=np.float32))
    index = vs.open_index(str(tmp_path))
    split = SplitKeys(np.array([keys[2], keys[0], keys[2]], "S32"), np.array([1, 0, 1]))
    joined = join_split(index, split)
    (chunk,) = list(joined.chunks())
    np.testing.assert_array_equal(chunk[0], np.eye(3, dtype=np.float32)[[2, 0, 2]])
    missing = keys_of("w")[0]
    with pytest.raises(KeyError, match=missing.hex()):
        join_split(index, SplitKeys(np.array([keys[0], missing], "S32"), np.array([0, 0])))


KILLED_WRITER = """
import os, sys
import numpy as np
from hubpipe.components.common import vector_store as vs
real = os.replace
calls = []
def replace(src, dst):
    real(src, dst)
    calls.append(dst)
    if len(calls) == 1:
        os._exit(9)  # killed between moving the .tfrecord out and committing the .json
os.replace = replace
vs.write_shard(sys.argv[1], [bytes(32)], np.ones((1, 4), np.float32))
"""


def test_a_killed_writer_leaves_nothing_readers_use_and_the_next_writer_sweeps_it(tmp_path: Path) -> None:
    space = tmp_path / "space"
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_WRITER), str(space)], check=False)
    assert done.returncode == 9
    left = sorted(p.name for p in space.iterdir())
    staging = [name for name in left if name.startswith(".shard-") and ".tmp-" in name and not name.endswith(".lock")]
    orphans = [name for name in left if name.endswith(".tfrecord")]
    assert (
        len(staging) == 1
        and len(orphans) == 1
        and not [n for n in left if n.startswith("shard-") and n.endswith(".json")]
    )
    assert len(vs.open_index(str(space))) == 0  # a shard without its JSON does not exist for readers
    user_file = space / ".notes.tmp-1"  # not a name the store creates: stays
    user_file.write_text("mine")
    live = space / f".shard-live.tmp-{os.getpid()}"
    with vs.owned_tmp(live):  # a writer that is alive: its staging folder stays
        live.mkdir()
        vs.write_shard(str(space), keys_of("a"), np.ones((1, 4), np.float32))
        names = sorted(p.name for p in space.iterdir())
        assert live.name in names and user_file.name in names
    assert staging[0] not in names and orphans[0] not in names
    assert len(vs.open_index(str(space))) == 1


def test_a_damaged_shard_is_ignored_and_reported_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = vs.write_shard(str(tmp_path), keys_of("a"), np.ones((1, 4), np.float32))
    bad = vs.write_shard(str(tmp_path), keys_of("b"), np.ones((1, 4), np.float32))
    path = tmp_path / f"{bad.name}.tfrecord"
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF  # one vector byte: same size, the key intact
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="hubpipe"):
        first = vs.open_index(str(tmp_path))
        second = vs.open_index(str(tmp_path))
    assert first.damaged == second.damaged == [bad.name]
    assert [s.name for s in first.shards] == [good.name] and len(first) == 1
    assert len([r for r in caplog.records if "damaged or incomplete" in r.getMessage()]) == 1


def test_spaces_differ_by_backbone_preprocessing_and_engine_class() -> None:
    base = vs.VectorSpace("fp", 224, "bilinear", (0.0, 1.0), "float32")
    others = [
        vs.VectorSpace("fp2", 224, "bilinear", (0.0, 1.0), "float32"),
        vs.VectorSpace("fp", 240, "bilinear", (0.0, 1.0), "float32"),
        vs.VectorSpace("fp", 224, "bicubic", (0.0, 1.0), "float32"),
        vs.VectorSpace("fp", 224, "bilinear", (-1.0, 1.0), "float32"),
        vs.VectorSpace("fp", 224, "bilinear", (0.0, 1.0), "int8"),
    ]
    assert len({base.id, *(space.id for space in others)}) == 6
    assert base.id == vs.VectorSpace("fp", 224, "bilinear", (0.0, 1.0), "float32").id


def test_content_key_is_the_digest_of_the_bytes_the_model_decodes() -> None:
    data = b"\x89PNG..."
    digest = hashlib.sha256(data).hexdigest()
    assert vs.content_key(digest, False, data) == bytes.fromhex(digest)
    assert vs.content_key("00" * 32, True, data) == hashlib.sha256(data).digest()  # transcoded: its new bytes


def test_keys_ending_in_zero_bytes_are_found_and_read(tmp_path: Path) -> None:
    """numpy's ``S32`` values drop trailing zero bytes: a key that ends in them must still match its record."""
    from hubpipe.components.train.extraction import not_stored

    keys = [bytes(31) + b"\x01", b"\x07" + bytes(31), bytes(32)]
    vs.write_shard(str(tmp_path), keys, np.arange(6, dtype=np.float32).reshape(3, 2))
    index = vs.open_index(str(tmp_path))
    (vectors,) = list(vs.read_vectors(index, np.array(keys[::-1], "S32")))
    np.testing.assert_array_equal(vectors, [[4, 5], [2, 3], [0, 1]])
    assert not any(not_stored((key, b""), index.keys) for key in keys)
    assert not_stored((b"\x07" + bytes(30) + b"\x01", b""), index.keys)


def test_a_store_that_cannot_hold_files_is_one_line_before_the_run(tmp_path: Path) -> None:
    from hubpipe.components.train.executor import preflight
    from hubpipe.pipeline.core.config import apply_overrides, load_config
    from hubpipe.pipeline.core.errors import UsageError

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = apply_overrides(load_config(), {"train.vector_store": str(blocker / "vectors")})
    with pytest.raises(UsageError, match=r"^train.vector_store .* cannot be used: .*a-file is not a folder"):
        preflight(config)
    preflight(apply_overrides(load_config(), {"train.vector_store": str(tmp_path / "new" / "vectors")}))


def test_a_write_error_of_the_machine_is_one_line(tmp_path: Path) -> None:
    from hubpipe.pipeline.core.errors import StageError

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    writer = vs.ShardWriter(str(blocker / "space"), shard_vectors=1)
    with pytest.raises(StageError, match=r"cannot write to the vector store .*space: "):
        writer.add(keys_of("a")[0], np.ones(3, np.float32))
