"""``hubpipe predict``: model folders, run folders, directories of images, bad files, a missing model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import train_fixtures

from hubpipe.pipeline.cli import main


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    for example_id, _, fmt, data in train_fixtures.example_images("test", train_fixtures.TEST_PER_CLASS)[:4]:
        (folder / f"{example_id.replace('/', '_')}.{fmt}").write_bytes(data)
    (folder / "notes.txt").write_text("not an image")  # skipped when a directory is given
    return folder


def predict(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, list[str], list[str]]:
    code = main(["predict", *args])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


def test_model_folder_and_directory_give_top_k_lines(trained_run, images: Path, capsys) -> None:
    request, _ = trained_run
    code, out, err = predict(capsys, str(request.output_dir / "models" / "tiny_backbone"), str(images), "--top-k", "2")
    assert code == 0, err
    assert len(out) == 4
    first = out[0].split()
    assert first[0] == str(images / "test_checkerboard_0.jpeg")  # directory entries in sorted order
    labels, probabilities = first[1::2], [float(p) for p in first[2::2]]
    assert len(labels) == 2 and set(labels) <= set(train_fixtures.CLASSES)
    assert probabilities == sorted(probabilities, reverse=True)


def test_run_folder_uses_the_best_model_and_bad_files_fail_at_the_end(
    trained_run, images: Path, tmp_path: Path, capsys
) -> None:
    request, _ = trained_run
    run_folder = tmp_path / "run"
    run_folder.mkdir()
    (run_folder / "train").symlink_to(request.output_dir)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    good = sorted(images.glob("*.jpeg"))[0]
    code, out, err = predict(capsys, str(run_folder), str(good), str(broken), str(tmp_path / "missing.png"))
    assert code == 1
    assert len(out) == 1 and out[0].startswith(str(good))
    assert len(out[0].split()) == 1 + 2 * 3  # the default top-3
    assert [line.split(":")[0] for line in err[:2]] == [str(broken), str(tmp_path / "missing.png")]
    assert err[-1] == "error: 2 of 3 images could not be classified"

    best = json.loads((request.output_dir / "summary.json").read_text())["best_model"]
    code_best, out_best, _ = predict(capsys, str(request.output_dir / "models" / best / "serving"), str(good))
    assert code_best == 0 and out_best == out


def test_missing_model_is_a_usage_error(images: Path, tmp_path: Path, capsys) -> None:
    code, out, err = predict(capsys, str(tmp_path / "nowhere"), str(images))
    assert code == 2 and out == [] and err == [f"error: no model at {tmp_path / 'nowhere'}"]
    code, _, err = predict(capsys, str(tmp_path), str(images))
    assert code == 2 and "is not a serving SavedModel" in err[0]
