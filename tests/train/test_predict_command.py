"""``hubpipe predict``: model folders, run folders, directories of images, bad files, a missing model; models
rebuilt by hubpipe's code (no graph from the folder runs), foreign SavedModels refused unless trusted, and the
limits of hubpipe's configuration (data.max_file_bytes, data.max_pixels) whatever the model folder says."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import train_fixtures
from PIL import Image
from test_pixel_limit import png_bomb

from hubpipe.pipeline.cli import main
from hubpipe.pipeline.core.config import DataConfig
from hubpipe.pipeline.core.runtime import import_tensorflow


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


def test_model_folder_and_directory_give_top_k_lines(trained_run, tiny_backbone: Path, images: Path, capsys) -> None:
    request, _ = trained_run
    model = str(request.output_dir / "models" / "tiny_backbone")
    code, out, err = predict(capsys, model, str(images), "--top-k", "2", "--backbone", str(tiny_backbone))
    assert code == 0, err
    assert len(out) == 4
    first = out[0].split()
    assert first[0] == str(images / "test_checkerboard_0.jpeg")  # directory entries in sorted order
    labels, probabilities = first[1::2], [float(p) for p in first[2::2]]
    assert len(labels) == 2 and set(labels) <= set(train_fixtures.CLASSES)
    assert probabilities == sorted(probabilities, reverse=True)


def test_run_folder_uses_the_best_model_and_bad_files_fail_at_the_end(
    trained_run, tiny_backbone: Path, images: Path, tmp_path: Path, capsys
) -> None:
    request, _ = trained_run
    run_folder = tmp_path / "run"
    run_folder.mkdir()
    (run_folder / "train").symlink_to(request.output_dir)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    good = sorted(images.glob("*.jpeg"))[0]
    backbone = ["--backbone", str(tiny_backbone)]
    code, out, err = predict(capsys, str(run_folder), str(good), str(broken), str(tmp_path / "missing.png"), *backbone)
    assert code == 2  # bad input: unreadable images (see errors.py)
    assert len(out) == 1 and out[0].startswith(str(good))
    assert len(out[0].split()) == 1 + 2 * 3  # the default top-3
    assert [line.split(":")[0] for line in err[:2]] == [str(broken), str(tmp_path / "missing.png")]
    assert err[-1] == "error: 2 of 3 images could not be classified"

    best = json.loads((request.output_dir / "summary.json").read_text())["best_model"]
    serving = request.output_dir / "models" / best / "serving"
    code_best, out_best, _ = predict(capsys, str(serving), str(good), *backbone)
    assert code_best == 0 and out_best == out


def test_missing_model_is_a_usage_error(images: Path, tmp_path: Path, capsys) -> None:
    code, out, err = predict(capsys, str(tmp_path / "nowhere"), str(images))
    assert code == 2 and out == [] and err == [f"error: no model at {tmp_path / 'nowhere'}"]
    code, _, err = predict(capsys, str(tmp_path), str(images))
    assert code == 2 and "is not a model folder (models/<name>), a run folder or a serving SavedModel" in err[0]


def _encoded(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), 90, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_crafted_saved_model(path: Path, marker: Path) -> Path:
    """A SavedModel with hubpipe's serving signature whose graph writes ``marker`` when called, and whose own
    ``max_pixels`` variable claims 1e15 (the issue's crafted serving folder)."""
    tf = import_tensorflow()

    class Crafted(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.max_pixels = tf.Variable(10**15, dtype=tf.int64, trainable=False, name="max_pixels")

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
        def serve(self, images):
            with tf.control_dependencies([tf.io.write_file(str(marker), "written by the model's graph")]):
                count = tf.shape(images)[0]
            probabilities = tf.ones([count, len(train_fixtures.CLASSES)]) / len(train_fixtures.CLASSES)
            classes = tf.broadcast_to(tf.constant(list(train_fixtures.CLASSES)), tf.shape(probabilities))
            return {"probabilities": probabilities, "classes": classes}

    module = Crafted()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


@pytest.fixture
def crafted(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "written-by-the-model.txt"
    return write_crafted_saved_model(tmp_path / "crafted", marker), marker


@pytest.fixture
def pictures(tmp_path: Path) -> Path:
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(png_bomb())  # 49 M pixels: over the default data.max_pixels
    (folder / "fine.png").write_bytes(_encoded((64, 48)))
    return folder


def test_a_crafted_serving_folder_in_a_model_folder_never_runs(
    trained_run, tiny_backbone: Path, crafted: tuple[Path, Path], pictures: Path, capsys
) -> None:
    """The publish root's case: someone replaced serving/ of a model folder. The model is rebuilt from the
    backbone and the head's weights; the folder's graph and its max_pixels are never used."""
    request, _ = trained_run
    saved_model, marker = crafted
    tmp_path = saved_model.parent
    for name in ("tiny_backbone", "scratch_cnn"):
        model = tmp_path / "models" / name
        shutil.copytree(request.output_dir / "models" / name, model)
        shutil.rmtree(model / "serving")
        shutil.copytree(saved_model, model / "serving")
    backbone = ["--backbone", str(tiny_backbone)]
    code, out, err = predict(capsys, str(tmp_path / "models" / "tiny_backbone"), str(pictures), *backbone)
    assert code == 2 and not marker.exists()
    assert len(out) == 1 and out[0].startswith(str(pictures / "fine.png"))
    assert err[0].startswith(f"{pictures / 'bomb.png'}: cannot classify: image declares more than 40,000,000 pixels")
    code, _, err = predict(capsys, str(tmp_path / "models" / "scratch_cnn"), str(pictures / "fine.png"))
    assert code == 2 and not marker.exists()  # its weights are not the CNN's: refused, nothing run
    assert len(err) == 1 and err[0].startswith(
        f"error: cannot rebuild the model in {tmp_path / 'models' / 'scratch_cnn'}"
    )
    assert "holds 0 weights, the model built for it 10" in err[0]


def test_a_foreign_saved_model_is_refused_unless_trusted_and_the_cap_stays_hubpipes(
    crafted: tuple[Path, Path], pictures: Path, capsys
) -> None:
    saved_model, marker = crafted
    code, out, err = predict(capsys, str(saved_model), str(pictures))
    assert code == 2 and out == [] and len(err) == 1 and not marker.exists()
    assert "is a SavedModel that hubpipe did not write" in err[0] and "--trust-saved-model" in err[0]
    assert "read and write files" in err[0]
    assert main(["predict", "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "operations can read and write files as you" in shown and "runs only with --trust-saved-model" in shown

    code, out, err = predict(capsys, str(saved_model), str(pictures), "--trust-saved-model")
    assert code == 2 and marker.exists()  # trusted: its graph ran, as the flag says it would
    assert len(out) == 1 and out[0].startswith(str(pictures / "fine.png"))
    assert any(line.startswith(f"{pictures / 'bomb.png'}: cannot classify: image declares more") for line in err)

    marker.unlink()
    settings = ["--trust-saved-model", "--set", "data.max_pixels=1000"]  # 64 x 48 = 3072 pixels
    code, out, err = predict(capsys, str(saved_model), str(pictures / "fine.png"), *settings)
    assert code == 2 and out == [] and not marker.exists()  # the cap of hubpipe's configuration, not 1e15
    assert any("fine.png: cannot classify: image declares more than 1,000 pixels" in line for line in err)


def test_a_transfer_model_loads_only_a_backbone_the_configuration_names(
    trained_run, tiny_backbone: Path, images: Path, tmp_path: Path, capsys
) -> None:
    request, _ = trained_run
    model = str(request.output_dir / "models" / "tiny_backbone")
    code, out, err = predict(capsys, model, str(images))
    assert code == 2 and out == []
    assert err == [
        f"error: {model} was trained on the backbone {tiny_backbone} (fingerprint "
        f"{json.loads(Path(model, 'model.json').read_text())['backbone_fingerprint']}), which is no preset and "
        "which the configuration does not name: give it with --backbone HANDLE (train.backbones)"
    ]
    config = tmp_path / "predict.yaml"
    config.write_text(f"train:\n  backbones: [{tiny_backbone}]\n")
    assert predict(capsys, model, str(images), "--config", str(config))[0] == 0
    other = tmp_path / "other"
    shutil.copytree(tiny_backbone, other)
    (other / "variables" / "variables.index").write_bytes(b"changed")  # another model, by its fingerprint
    code, _, err = predict(capsys, model, str(images), "--backbone", str(other))
    assert code == 2 and "give it with --backbone HANDLE" in err[0]


def test_rebuilt_models_predict_what_their_serving_models_predict(trained_run, tiny_backbone: Path) -> None:
    """Feature extraction, fine-tuned and from-scratch models, rebuilt by hubpipe's code, against the serving
    SavedModel that training wrote (the path `hubpipe predict` used before)."""
    from hubpipe.components.train.serving import load_classifier

    tf = import_tensorflow()
    request, _ = trained_run
    encoded = [data for _, _, _, data in train_fixtures.example_images("test", train_fixtures.TEST_PER_CLASS)]
    encoded.append(_encoded((300, 17)))
    for name in ("tiny_backbone", "tiny_backbone_fine_tuned", "scratch_cnn"):
        folder = request.output_dir / "models" / name
        serve = tf.saved_model.load(str(folder / "serving")).signatures["serving_default"]
        expected = serve(images=tf.constant(encoded))["probabilities"].numpy()
        probabilities, names = load_classifier(folder, backbones=[str(tiny_backbone)]).classify(encoded)
        assert names == list(train_fixtures.CLASSES)
        np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6, err_msg=name)


#: Runs the command in its argv[2:] and writes its peak resident memory (KiB) to argv[1]. A child's peak counts the
#: memory of the process it was forked from, so the command is started from this small process, not from pytest.
PEAK_RSS = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(code)"
)


def test_a_file_over_max_file_bytes_is_refused_before_it_is_read(trained_run, tmp_path: Path) -> None:
    """A sparse 1.5 GB file: refused by its size, so the process never holds it (peak memory of the command)."""
    request, _ = trained_run
    huge = tmp_path / "huge.png"
    with huge.open("wb") as handle:
        handle.write(_encoded((8, 8)))
    os.truncate(huge, 1536 * 1024**2)  # sparse: no disk space used
    (tmp_path / "fine.png").write_bytes(_encoded((64, 48)))
    model = str(request.output_dir / "models" / "scratch_cnn")
    command = [sys.executable, "-m", "hubpipe.pipeline.cli", "predict", model, str(huge), str(tmp_path / "fine.png")]
    peak = tmp_path / "peak_rss_kb"
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(peak), *command], capture_output=True, text=True, check=False, timeout=300
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout.startswith(str(tmp_path / "fine.png"))
    limit = DataConfig.max_file_bytes
    assert f"{huge}: cannot classify: {1536 * 1024**2:,} bytes, over data.max_file_bytes ({limit:,})" in result.stderr
    assert int(peak.read_text()) * 1024 < 1024**3  # about 0.6 GB; reading the file would hold all of it (and copies)


def _pixels(data: bytes) -> bytes:
    return Image.open(io.BytesIO(data)).convert("RGB").tobytes()


def _formats(png: bytes) -> dict[str, bytes]:
    """The picture of ``png`` as lossless WebP and as TIFF (formats TensorFlow does not read; ingest converts)."""
    picture = Image.open(io.BytesIO(png)).convert("RGB")
    converted = {}
    for name, options in (("webp", {"format": "WEBP", "lossless": True}), ("tiff", {"format": "TIFF"})):
        buffer = io.BytesIO()
        picture.save(buffer, **options)
        converted[name] = buffer.getvalue()
    return converted


def test_webp_and_tiff_are_classified_as_ingest_converted_them(trained_run, tmp_path: Path, capsys) -> None:
    """Predict takes every format ingest takes, with ingest's conversion (a lossless copy predicts as the PNG),
    and keeps the pixel cap for them."""
    from hubpipe.components.ingest.images import inspect_image, transcode

    request, _ = trained_run
    png = _encoded((64, 48))
    (tmp_path / "picture.png").write_bytes(png)
    for suffix, data in _formats(png).items():
        (tmp_path / f"picture.{suffix}").write_bytes(data)
        info = inspect_image(data, DataConfig.max_pixels)
        assert info.transcode == f"{suffix}_format"  # what ingest does with it: converted to PNG
        assert _pixels(transcode(data, info)) == _pixels(png)
    model = str(request.output_dir / "models" / "scratch_cnn")
    code, out, err = predict(capsys, model, str(tmp_path))  # a folder: .webp and .tiff files are listed too
    assert code == 0, err
    lines = {Path(line.split()[0]).suffix: line.split()[1:] for line in out}
    assert set(lines) == {".png", ".webp", ".tiff"}
    assert lines[".webp"] == lines[".png"] and lines[".tiff"] == lines[".png"]
    code, out, err = predict(capsys, model, str(tmp_path / "picture.webp"), "--set", "data.max_pixels=1000")
    assert code == 2 and out == [] and "over data.max_pixels (1,000)" in err[0], err


def _publish_root(root: Path, model_dir: Path, version: str) -> Path:
    """A publish root whose LATEST names ``version``, a copy of ``model_dir`` (as publish lays one out)."""
    target = root / "models" / version
    shutil.copytree(model_dir, target)
    (target / "version.json").write_text(json.dumps({"model": model_dir.name, "model_key": version}))
    (root / "models" / "LATEST").write_text(f"{version}\n")
    (root / "tensorboard").mkdir(exist_ok=True)
    return root


def test_a_publish_root_predicts_with_its_latest_blessed_model(trained_run, images: Path, tmp_path: Path, capsys):
    import hubpipe

    request, _ = trained_run
    models = request.output_dir / "models"
    root = _publish_root(tmp_path / "published", models / "tiny_backbone_fine_tuned", "v1")
    root = _publish_root(root, models / "scratch_cnn", "v2")  # LATEST: v2
    picture = str(sorted(images.glob("*.jpeg"))[0])
    code, out, err = predict(capsys, str(root), picture)
    assert code == 0, err
    assert predict(capsys, str(models / "scratch_cnn"), picture)[1] == out
    published = hubpipe.load_published(root)
    assert published.version == "v2"
    (top,) = published.predict([picture])["top"]
    shown = out[0].split()[1:]
    assert [label for label, _ in top] == shown[::2]
    assert all(abs(p - float(text)) <= 5e-4 for (_, p), text in zip(top, shown[1::2], strict=True))
    (root / "models" / "LATEST").unlink()
    code, out, err = predict(capsys, str(root), picture)
    assert code == 2 and "no model is blessed in the publish root" in err[0]
