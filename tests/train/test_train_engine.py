"""The extraction engine: TFLite conversion of a backbone's feature model, parity check, cache and fallbacks."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import train_fixtures

from hubpipe.components.backbones import resolve_backbone
from hubpipe.components.train import engine
from hubpipe.components.train.core import train_models
from hubpipe.components.train.engine import frozen_features
from hubpipe.components.train.session import TrainRequest
from hubpipe.pipeline.core.cache_root import cache_root
from hubpipe.pipeline.core.config import replace
from hubpipe.pipeline.core.locking import owned_tmp
from hubpipe.pipeline.core.runtime import import_tensorflow

#: Stores a conversion and is killed between writing the temporary file and renaming it into place.
KILLED_WRITER = """
import os, signal, sys
from hubpipe.components.train import engine
from hubpipe.pipeline.core.cache_root import cache_root
os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
engine._store_conversion(engine.conversion_dir(cache_root()), sys.argv[1], b"partial", {})
"""


def _select(tf, setting: str, device: str, features, identity, **options) -> engine.Engine:
    """The engine chosen with the conversions of hubpipe's cache folder (the test's own)."""
    return engine.select_engine(
        tf, setting, device, features, identity, conversions=engine.conversion_dir(cache_root()), **options
    )


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Conversions are cached in hubpipe's cache folder: one of the test's own."""
    monkeypatch.setenv("HUBPIPE_CACHE_DIR", str(tmp_path))


@pytest.mark.parametrize(
    ("setting", "device", "expected"),
    [
        ("auto", "CPU", True),
        ("auto", "GPU", False),
        ("tflite", "CPU", True),
        ("tflite", "GPU", True),
        ("tensorflow", "CPU", False),
    ],
)
def test_auto_converts_on_cpu_only(setting: str, device: str, expected: bool) -> None:
    assert engine.wants_tflite(setting, device) is expected


def test_parity_is_relative_to_the_features_scale() -> None:
    reference = np.array([[100.0, -50.0]], np.float32)
    assert engine.parity(reference, reference + 0.005) == pytest.approx((0.005, 0.01), rel=1e-3)
    small = np.array([[0.1, 0.2]], np.float32)
    diff, allowed = engine.parity(small, small + 0.001)
    assert diff > allowed  # a scale below 1 counts as 1
    assert engine.parity(small, np.zeros((1, 3), np.float32))[0] == float("inf")


def test_the_probe_batch_is_fixed_and_in_range() -> None:
    first, second = engine.probe_batch(32), engine.probe_batch(32)
    assert first.shape == (engine.PROBE_IMAGES, 32, 32, 3) and np.array_equal(first, second)
    assert first.min() >= 0.0 and first.max() <= 1.0 and first.std() > 0.1


def _feature_model(backbone: Path):
    tf = import_tensorflow()
    return (tf, *frozen_features(tf, resolve_backbone(str(backbone))))


def test_tflite_computes_the_tensorflow_features_and_is_cached(tiny_backbone: Path) -> None:
    tf, features, identity = _feature_model(tiny_backbone)
    chosen = _select(tf, "auto", "CPU", features, identity, threads=2)
    assert chosen.name == engine.TFLITE and chosen.max_abs_diff is not None and chosen.max_abs_diff < 1e-4
    images = np.random.default_rng(1).random((5, 32, 32, 3), dtype=np.float32)
    expected = np.asarray(features(images, training=False))
    np.testing.assert_allclose(chosen.features(images), expected, atol=1e-4)
    np.testing.assert_allclose(chosen.features(images[:2]), expected[:2], atol=1e-4)  # another batch size
    assert len(list(engine.conversion_dir(cache_root()).glob("*.tflite"))) == 1
    again = _select(tf, "auto", "CPU", features, identity, threads=2)
    assert again.name == engine.TFLITE and "cached" in again.reason
    np.testing.assert_allclose(again.features(images), expected, atol=1e-4)


@pytest.mark.parametrize("damage", ["truncate", "other_bytes", "no_digest"])
def test_a_damaged_cached_conversion_is_converted_again(
    tiny_backbone: Path, damage: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tf, features, identity = _feature_model(tiny_backbone)
    assert _select(tf, "tflite", "CPU", features, identity, threads=1).name == engine.TFLITE
    [cached] = engine.conversion_dir(cache_root()).glob("*.tflite")
    whole = cached.read_bytes()
    record_path = cached.with_suffix(".json")
    if damage == "truncate":  # a half-copied cache volume
        cached.write_bytes(whole[: len(whole) // 2])
    elif damage == "other_bytes":  # a flatbuffer the parity was not measured on
        cached.write_bytes(whole[:-1] + bytes([whole[-1] ^ 1]))
    else:  # a record written without the digest
        record = json.loads(record_path.read_text())
        del record["sha256"]
        record_path.write_text(json.dumps(record))
    convert = engine.convert
    calls: list[int] = []
    monkeypatch.setattr(engine, "convert", lambda *args: (calls.append(1), convert(*args))[1])
    with caplog.at_level(logging.INFO, logger=engine.__name__):
        again = _select(tf, "tflite", "CPU", features, identity, threads=1)
    assert again.name == engine.TFLITE and "cached" not in again.reason and calls == [1]
    assert "damaged or incomplete" in caplog.text
    assert cached.read_bytes() == whole and json.loads(record_path.read_text())["sha256"]  # stored whole again
    few = _select(tf, "auto", "CPU", features, identity, threads=1, images=1)
    assert few.name == engine.TFLITE and "cached" in few.reason and calls == [1]


@pytest.mark.parametrize(("threads", "side_by_side"), [(1, True), (2, False)])
def test_the_interpreter_runs_fixed_groups_planned_once(
    tiny_backbone: Path, monkeypatch: pytest.MonkeyPatch, threads: int, side_by_side: bool
) -> None:
    tf, features, _ = _feature_model(tiny_backbone)
    model = engine.convert(tf, features, 32)
    extractor = engine.TFLiteFeatures(tf, model, threads, side_by_side=side_by_side)
    assert len(extractor._interpreters) == 1
    interpreter = extractor._interpreters[0].interpreter
    plans: list[tuple[int, ...]] = []
    invoked: list[tuple[int, ...]] = []
    allocate, invoke = interpreter.allocate_tensors, interpreter.invoke

    def input_shape() -> tuple[int, ...]:
        return tuple(int(n) for n in interpreter.get_input_details()[0]["shape"])

    monkeypatch.setattr(interpreter, "allocate_tensors", lambda: (plans.append(input_shape()), allocate())[1])
    monkeypatch.setattr(interpreter, "invoke", lambda: (invoked.append(input_shape()), invoke())[1])
    images = np.random.default_rng(2).random((9, 32, 32, 3), dtype=np.float32)
    for batch in (images, images[:1], images[:4], images[:6]):  # more than a group, less, exactly one, between
        vectors = extractor(batch)
        assert vectors.shape[0] == len(batch)
        np.testing.assert_allclose(vectors, features(batch, training=False), atol=1e-4)
    assert plans == [(engine.INVOKE_BATCH, 32, 32, 3)]  # planned once, not per call or per batch size
    assert set(invoked) == {(engine.INVOKE_BATCH, 32, 32, 3)} and len(invoked) == 3 + 1 + 1 + 2


def test_interpreters_run_groups_side_by_side_in_order(tiny_backbone: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tf, features, _ = _feature_model(tiny_backbone)
    extractor = engine.TFLiteFeatures(tf, engine.convert(tf, features, 32), threads=2)
    together = threading.Barrier(2, timeout=30)  # breaks (and fails the call) unless both run at once
    calls: list[int] = []
    for number, wrapper in enumerate(extractor._interpreters):
        invoke = wrapper.interpreter.invoke

        def first_waits(invoke: Any = invoke, number: int = number) -> None:
            if number not in calls:
                together.wait()
            calls.append(number)
            invoke()

        monkeypatch.setattr(wrapper.interpreter, "invoke", first_waits)
    images = np.random.default_rng(3).random((4 * engine.INVOKE_BATCH + 1, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(extractor(images), features(images, training=False), atol=1e-4)  # rows in order
    assert sorted(set(calls)) == [0, 1] and len(calls) == 5


def test_many_cores_share_a_few_interpreters(tiny_backbone: Path) -> None:
    tf, features, _ = _feature_model(tiny_backbone)
    model = engine.convert(tf, features, 32)
    assert engine.MAX_INTERPRETERS == 4
    for threads, expected in ((2, [1, 1]), (4, [1, 1, 1, 1]), (6, [2, 2, 1, 1]), (9, [3, 2, 2, 2])):
        extractor = engine.TFLiteFeatures(tf, model, threads)
        assert [interpreter.threads for interpreter in extractor._interpreters] == expected
    images = np.random.default_rng(4).random((10, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(extractor(images), features(images, training=False), atol=1e-4)


def test_auto_converts_only_for_enough_images_but_uses_a_cached_conversion(
    tiny_backbone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tf, features, identity = _feature_model(tiny_backbone)
    convert = engine.convert
    calls: list[int] = []
    monkeypatch.setattr(engine, "convert", lambda *args: (calls.append(1), convert(*args))[1])
    few = engine.AUTO_MIN_IMAGES - 1
    chosen = _select(tf, "auto", "CPU", features, identity, threads=1, images=few)
    assert chosen.name == engine.TENSORFLOW and "fewer than" in chosen.reason and not calls
    assert _select(tf, "tflite", "CPU", features, identity, threads=1, images=few).name == engine.TFLITE
    assert len(calls) == 1  # tflite converts whatever the count
    cached = _select(tf, "auto", "CPU", features, identity, threads=1, images=few)
    assert cached.name == engine.TFLITE and "cached" in cached.reason and len(calls) == 1


def test_a_killed_writers_temporary_file_is_removed_and_the_conversion_still_caches(tiny_backbone: Path) -> None:
    tf, features, identity = _feature_model(tiny_backbone)
    key = engine.conversion_key(identity.fingerprint, tf.__version__, identity.input_size, identity.input_range)
    folder = engine.conversion_dir(cache_root())
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, key], check=False, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert any(".tflite.tmp-" in path.name for path in folder.iterdir())  # the killed writer's partial file
    with owned_tmp(folder / ".other.tflite.tmp-1") as live:  # another process, alive, writing
        live.write_bytes(b"being written")
        chosen = _select(tf, "tflite", "CPU", features, identity, threads=1)
        assert live.exists()  # a live writer's file is kept
    assert chosen.name == engine.TFLITE and "cached" not in chosen.reason
    assert sorted(path.name for path in folder.iterdir()) == [f"{key}.json", f"{key}.tflite"]
    again = _select(tf, "auto", "CPU", features, identity, threads=1, images=1)
    assert again.name == engine.TFLITE and "cached" in again.reason


def test_tensorflow_setting_and_gpu_do_not_convert(tiny_backbone: Path) -> None:
    tf, features, identity = _feature_model(tiny_backbone)
    assert _select(tf, "tensorflow", "CPU", features, identity, threads=2).name == engine.TENSORFLOW
    assert _select(tf, "auto", "GPU", features, identity, threads=2).name == engine.TENSORFLOW


def test_a_failed_parity_check_falls_back_with_one_line(
    tiny_backbone: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(engine, "PARITY_TOLERANCE", -1.0)
    tf, features, identity = _feature_model(tiny_backbone)
    with caplog.at_level(logging.WARNING, logger=engine.__name__):
        chosen = _select(tf, "tflite", "CPU", features, identity, threads=1)
    assert chosen.name == engine.TENSORFLOW and chosen.reason == "TFLite parity check failed"
    assert len(caplog.records) == 1 and "extracting with TensorFlow" in caplog.records[0].getMessage()
    assert not list(engine.conversion_dir(cache_root()).glob("*.tflite"))  # a failed conversion is not cached


def test_a_failed_conversion_falls_back(
    tiny_backbone: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:

    def broken(*args: object) -> bytes:
        raise ValueError("op not supported\nmore detail")

    monkeypatch.setattr(engine, "convert", broken)
    tf, features, identity = _feature_model(tiny_backbone)
    with caplog.at_level(logging.WARNING, logger=engine.__name__):
        chosen = _select(tf, "auto", "CPU", features, identity, threads=1)
    assert chosen.name == engine.TENSORFLOW and chosen.reason == "TFLite conversion failed"
    assert [r.getMessage() for r in caplog.records] == [
        f"{identity.name}: TFLite conversion failed (op not supported); extracting with TensorFlow"
    ]
    images = np.zeros((1, 32, 32, 3), np.float32)
    np.testing.assert_allclose(chosen.features(images), np.asarray(features(images)), atol=1e-6)


def test_the_vector_space_does_not_depend_on_the_engine(tmp_path: Path, ingest_dir: Path, tiny_backbone: Path) -> None:
    """Vectors computed by TFLite are reused by a TensorFlow run (and the engine is recorded)."""
    store = str(tmp_path / "vectors")
    config = train_fixtures.tiny_train_config(
        tiny_backbone, baseline=False, epochs=1, engine="tflite", vector_store=store
    )
    records = []
    for run, changed in enumerate((config, replace(config, engine="tensorflow"))):
        request = TrainRequest(ingest_dir, tmp_path / f"train{run}", tmp_path / "cache", changed, 32, cache_root())
        request.output_dir.mkdir()
        outcome = train_models(request)
        (name,) = outcome.extraction_engine
        records.append(json.loads((request.output_dir / "models" / name / "model.json").read_text()))
        assert outcome.results()["extraction_engine"] == {name: ["tflite", "cache"][run]}
    assert records[0]["vector_space"] == records[1]["vector_space"]
    assert records[0]["extraction_engine"]["engine"] == "tflite" and records[1]["embeddings_cached"] is True
    assert abs(records[0]["test_accuracy"] - records[1]["test_accuracy"]) < 1e-9
