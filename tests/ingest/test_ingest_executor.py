"""The ingest executor on a corpus of bad inputs: every file is ingested, transcoded or quarantined for the
right reason, the counts add up, and the examples are what the train stage reads."""

from __future__ import annotations

import errno
import os
import zipfile
from collections import Counter
from pathlib import Path

import image_corpus as corpus
import pytest

from hubpipe.components.common import features as f
from hubpipe.components.ingest import quarantine as q
from hubpipe.components.ingest.executor import run
from hubpipe.pipeline.core.artifacts import read_json
from hubpipe.pipeline.core.config import load_config
from hubpipe.pipeline.core.errors import DataError
from hubpipe.pipeline.core.stage import StageContext, StageResult

CAT, DOG, UNICODE = "cats", "dogs", "crème brûlée 🍮"
SETTINGS = {"data.max_pixels": 1_000_000, "data.max_file_bytes": 200_000}

#: source-relative path -> expected quarantine reason
EXPECTED_QUARANTINE = {
    f"train/{CAT}/zero.jpg": q.EMPTY_FILE,
    f"train/{CAT}/truncated.jpg": q.TRUNCATED,
    f"train/{CAT}/text.jpg": q.NOT_AN_IMAGE,
    f"train/{CAT}/animated.gif": q.ANIMATED,
    f"train/{CAT}/huge.png": q.TOO_MANY_PIXELS,
    f"train/{CAT}/bomb.png": q.TOO_MANY_PIXELS,
    f"train/{CAT}/big.jpg": q.FILE_TOO_LARGE,
    f"train/{CAT}/icon.ico": q.UNSUPPORTED_FORMAT,
    f"train/{CAT}/escape.jpg": q.SYMLINK_OUTSIDE_ROOT,
    f"train/{DOG}/pipe.jpg": q.NOT_A_REGULAR_FILE,
    f"train/{CAT}/copy.jpg": q.DUPLICATE_IN_CLASS,
    f"train/{CAT}/shared.jpg": q.CONFLICTING_LABELS,
    f"train/{DOG}/shared.jpg": q.CONFLICTING_LABELS,
    f"train/{CAT}/leak.jpg": q.TRAIN_TEST_LEAKAGE,
    "train/README.txt": q.OUTSIDE_CLASS_FOLDER,
    "test/owls/owl.jpg": q.CLASS_NOT_IN_TRAIN,
}
#: source-relative path -> (image/format, transcoding reason)
EXPECTED_KEPT = {
    f"train/{CAT}/png_named.jpg": ("png", ""),
    f"train/{CAT}/cmyk.jpg": ("jpeg", "cmyk_jpeg"),
    f"train/{CAT}/sixteen.png": ("png", "16_bit_png"),
    f"train/{CAT}/palette_alpha.png": ("png", "alpha"),
    f"train/{DOG}/photo.webp": ("png", "webp_format"),
    f"train/{DOG}/palette.bmp": ("png", "palette_or_compressed_bmp"),
    f"train/{DOG}/still.gif": ("gif", ""),
    f"train/{UNICODE}/flan ☃.jpg": ("jpeg", ""),
    f"test/{CAT}/leak.jpg": ("jpeg", ""),
}


def build_corpus(root: Path, outside: Path) -> Path:
    """A split-layout dataset holding one file of every kind, beside good images of three classes."""
    corpus.simple_dataset(root, {CAT: (12, 3), DOG: (12, 3), UNICODE: (11, 2)}, seed=1)
    cat, dog, test_cat = root / "train" / CAT, root / "train" / DOG, root / "test" / CAT
    writes = {
        cat / "zero.jpg": b"",
        cat / "truncated.jpg": corpus.truncated_jpeg(2),
        cat / "text.jpg": b"this is not a photo\n",
        cat / "png_named.jpg": corpus.png(3),
        cat / "cmyk.jpg": corpus.cmyk_jpeg(4),
        cat / "sixteen.png": corpus.sixteen_bit_png(5),
        cat / "palette_alpha.png": corpus.palette_png_with_transparency(6),
        cat / "animated.gif": corpus.animated_gif(7),
        cat / "huge.png": corpus.huge_png(2000, 1000),
        cat / "bomb.png": corpus.png_bomb(),
        cat / "big.jpg": corpus.encode(corpus.noise(8, (400, 400)), "PNG"),
        cat / "icon.ico": corpus.ico(9),
        cat / "copy.jpg": (cat / "000.jpg").read_bytes(),
        cat / "shared.jpg": corpus.jpeg(10),
        dog / "shared.jpg": corpus.jpeg(10),
        cat / "leak.jpg": corpus.jpeg(11),
        test_cat / "leak.jpg": corpus.jpeg(11),
        cat / ".DS_Store": b"\0\0",
        dog / "photo.webp": corpus.webp(12),
        dog / "palette.bmp": corpus.palette_bmp(13),
        dog / "still.gif": corpus.single_frame_gif(14),
        root / "train" / UNICODE / "flan ☃.jpg": corpus.jpeg(15),
        root / "train" / "README.txt": b"about this dataset",
        root / "test" / "owls" / "owl.jpg": corpus.jpeg(16),
    }
    for path, data in writes.items():
        corpus.write(path, data)
    (root / "train" / "empty_class").mkdir()
    (cat / "escape.jpg").symlink_to(corpus.write(outside / "private.jpg", corpus.jpeg(17)))
    os.mkfifo(dog / "pipe.jpg")
    return root


def context(tmp: Path, source: Path | str, **settings) -> StageContext:
    output = tmp / "ingest-output"
    output.mkdir(parents=True)
    config = load_config(overrides={"data.source": str(source), **SETTINGS, **settings})
    return StageContext(
        name="ingest",
        config=config,
        inputs={},
        output_dir=output,
        cache_dir=tmp / "cache",
        cache_root=tmp / "hubpipe-cache",
        code_version="test",
    )


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[StageContext, StageResult]:
    tmp = tmp_path_factory.mktemp("corpus")
    root = build_corpus(tmp / "dataset", tmp / "outside")
    ctx = context(tmp, root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HUBPIPE_CACHE_DIR", str(tmp / "hubpipe-cache"))
        return ctx, run(ctx)


def read_examples(folder: Path) -> list[dict]:
    from hubpipe.pipeline.core.runtime import import_tensorflow

    tf = import_tensorflow()
    rows = []
    for split in f.SPLITS:
        dataset = tf.data.TFRecordDataset([str(p) for p in f.example_files(folder, split)])
        for record in dataset:
            parsed = tf.io.parse_single_example(record, f.feature_spec())
            row = {
                k: (v.numpy().decode() if v.dtype == tf.string and k != f.IMAGE else v.numpy())
                for k, v in parsed.items()
            }
            row["decoded_shape"] = tuple(tf.io.decode_image(parsed[f.IMAGE], channels=3, expand_animations=False).shape)
            rows.append(row)
    return rows


def test_every_bad_input_is_quarantined_with_its_reason(corpus_run) -> None:
    ctx, _ = corpus_run
    entries = read_json(ctx.output_dir / "quarantine.json")
    assert {e["path"]: e["reason"] for e in entries} == EXPECTED_QUARANTINE
    assert all(set(e) == {"path", "reason", "detail"} and e["detail"] for e in entries)


def test_kept_examples_are_decodable_transcoded_where_needed_and_labelled(corpus_run) -> None:
    ctx, result = corpus_run
    labels = f.read_labels(ctx.output_dir)
    assert labels == sorted([CAT, DOG, UNICODE])
    examples = {row[f.SOURCE_PATH]: row for row in read_examples(ctx.output_dir)}
    assert len(examples) == result.results["examples_written"]
    for path, (fmt, reason) in EXPECTED_KEPT.items():
        row = examples[path]
        assert (row[f.FORMAT], row[f.TRANSCODED]) == (fmt, int(bool(reason))), path
    for row in examples.values():
        assert labels[row[f.LABEL]] == row[f.LABEL_TEXT]
        assert row["decoded_shape"] == (row[f.HEIGHT], row[f.WIDTH], 3)
        assert row[f.SPLIT] == row[f.SOURCE_PATH].split("/")[0]
    assert len({row[f.ID] for row in examples.values()}) == len(examples)


def test_results_account_for_every_file(corpus_run) -> None:
    ctx, result = corpus_run
    results = result.results
    assert (
        results["files_seen"] == results["examples_written"] + results["quarantined"] + results["held_out_by_percent"]
    )
    assert results["quarantined"] == len(EXPECTED_QUARANTINE)
    assert results["quarantined_by_reason"] == dict(Counter(EXPECTED_QUARANTINE.values()))
    assert results["transcoded"] == sum(1 for _, reason in EXPECTED_KEPT.values() if reason)
    assert (results["duplicates_in_class"], results["conflicting_labels"], results["train_test_leakage"]) == (1, 2, 1)
    assert results["empty_class_folders"] == ["train/empty_class"]
    assert results["test_only_classes"] == ["owls"]
    assert results["hidden_skipped"] == 1
    assert results["classes"] == 3 and results["layout"] == "split"
    assert result.rejected is None
    assert set(result.artifacts) == {"examples", "labels", "quarantine", "duplicates", "summary"}
    duplicates = read_json(ctx.output_dir / "duplicates.json")
    assert {d["kind"] for d in duplicates} == {q.DUPLICATE_IN_CLASS, q.CONFLICTING_LABELS, q.TRAIN_TEST_LEAKAGE}


def test_quarantine_summary_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from hubpipe.components.ingest.core import _log_summary
    from hubpipe.components.ingest.quarantine import Quarantined

    entries = [Quarantined("a.jpg", q.TRUNCATED, "cut"), Quarantined("b.jpg", q.TRUNCATED, "cut")]
    results = {
        "files_seen": 3,
        "examples_written": 1,
        "train_examples": 1,
        "test_examples": 0,
        "classes": 2,
        "transcoded": 0,
        "held_out_by_percent": 0,
        "quarantined": 2,
        "quarantined_by_reason": {q.TRUNCATED: 2},
    }
    with caplog.at_level("INFO", logger="hubpipe.ingest"):
        _log_summary(results, entries)
    assert "quarantine: 2 truncated" in caplog.text
    assert "a.jpg: truncated (cut)" in caplog.text


def _flat_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for label, offset in (("apples", 100), ("pears", 200)):
            for i in range(40):
                bundle.writestr(f"fruit/{label}/{i}.jpg", corpus.jpeg(offset + i))
        bundle.writestr("../outside.jpg", corpus.jpeg(999))
        bundle.writestr("fruit/pears/same.jpg", corpus.jpeg(100))  # also in apples: conflicting labels
    return path


def test_zip_source_flat_layout_percent_and_policy_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBPIPE_CACHE_DIR", str(tmp_path / "not-read"))  # the executor uses ctx.cache_root
    archive = _flat_zip(tmp_path / "fruit.zip")
    ctx = context(tmp_path, archive, **{"data.percent": 50, "data.duplicates_across_classes": "fail"})
    result = run(ctx)
    results = result.results
    assert results["layout"] == "flat"
    assert results["quarantined_by_reason"] == {q.UNSAFE_ARCHIVE_MEMBER: 1}
    assert not (tmp_path / "outside.jpg").exists()
    assert results["files_seen"] == 82
    assert results["held_out_by_percent"] > 0
    assert (
        results["files_seen"] == results["examples_written"] + results["quarantined"] + results["held_out_by_percent"]
    )
    assert 0 < results["test_examples"] < results["train_examples"] + results["held_out_by_percent"]
    assert result.rejected and "data.duplicates_across_classes=fail" in result.rejected
    assert "fruit/pears/same.jpg" in result.rejected
    assert any((tmp_path / "hubpipe-cache").rglob("*.jpg")) and not (tmp_path / "not-read").exists()


@pytest.mark.parametrize(
    ("classes", "message"),
    [({"cats": (3, 1)}, r"only one class \(cats\)"), ({}, "no images found")],
)
def test_single_class_or_no_images_is_a_clear_error(tmp_path: Path, classes: dict, message: str) -> None:
    root = corpus.simple_dataset(tmp_path / "d", classes)
    (root / "train" / "empty").mkdir(parents=True)
    with pytest.raises(DataError, match=message):
        run(context(tmp_path, root))


def test_symlinks_into_other_classes_are_reported_and_move_no_image(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for seed in range(12):
        corpus.write(root / ("bird", "cat", "dog")[seed % 3] / f"{seed}.jpg", corpus.jpeg(seed))
    (root / "bird" / "catlink").symlink_to("../cat", target_is_directory=True)
    (root / "bird" / "up").symlink_to("..", target_is_directory=True)
    result = run(context(tmp_path, root))
    quarantined = {e["path"]: e["reason"] for e in read_json(tmp_path / "ingest-output" / "quarantine.json")}
    assert quarantined == {"bird/catlink": q.SYMLINK_TO_OTHER_CLASS, "bird/up": q.SYMLINK_TO_OTHER_CLASS}
    labels = {row[f.SOURCE_PATH]: row[f.LABEL_TEXT] for row in read_examples(tmp_path / "ingest-output")}
    assert labels == {
        f"{label}/{seed}.jpg": label for seed in range(12) for label in [("bird", "cat", "dog")[seed % 3]]
    }
    assert result.results["empty_class_folders"] == [] and result.results["classes"] == 3
    assert result.results["files_seen"] == 14 and result.rejected is None


@pytest.mark.parametrize("failing_read", [1, 2], ids=["inspect", "write-shard"])
def test_a_machine_error_inside_the_beam_pipeline_stops_ingest_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_read: int
) -> None:
    """An EIO on the first read of a file (inspection) or the second (writing its shard) fails the stage."""
    from hubpipe.components.ingest import records
    from hubpipe.components.ingest.io_errors import MachineIOError

    root = corpus.simple_dataset(tmp_path / "pets", {CAT: (4, 1), DOG: (4, 1)})
    reads: Counter[str] = Counter()

    def failing_disk(path, *args, **kwargs):
        reads[str(path)] += 1
        if str(path).endswith(f"{DOG}/002.jpg") and reads[str(path)] == failing_read:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(records, "open", failing_disk, raising=False)
    with pytest.raises(MachineIOError) as info:
        run(context(tmp_path, root))
    assert str(info.value) == f"input/output error while reading {root}/train/{DOG}/002.jpg"
    assert reads[str(root / "train" / DOG / "002.jpg")] == failing_read


def test_many_empty_class_folders_make_one_short_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for i in range(300):
        (tmp_path / "data" / f"empty_{i:03d}").mkdir(parents=True)
    with caplog.at_level("WARNING", logger="hubpipe.ingest"), pytest.raises(DataError) as info:
        run(context(tmp_path, tmp_path / "data"))
    assert str(info.value).endswith(
        "(empty class folders: empty_000, empty_001, empty_002, empty_003, empty_004 ... and 295 more)"
    )
    assert len(str(info.value)) < 300
    assert [len(r.getMessage()) < 200 for r in caplog.records] == [True]
