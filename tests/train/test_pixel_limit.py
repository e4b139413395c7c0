"""The pixel cap of the serving signature and ``hubpipe predict``: read from the header, before decoding."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hubpipe.components.train.pixel_limit import declared_pixels
from hubpipe.pipeline.cli import main
from hubpipe.pipeline.core.config import DataConfig
from hubpipe.pipeline.core.runtime import import_tensorflow

BOMB_SIDE = 7000  # 49 M pixels: over the default data.max_pixels (40 M), about 50 KB as a PNG


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(side: int = BOMB_SIDE) -> bytes:
    """A valid grayscale PNG of ``side`` x ``side`` black pixels, compressed row by row."""
    compressor, row, parts = zlib.compressobj(9), b"\0" * (side + 1), []
    for _ in range(side):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


def _encoded(fmt: str, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "BMP", "JPEG"])
def test_declared_pixels_match_the_header_of_each_format(fmt: str) -> None:
    tf = import_tensorflow()
    assert int(declared_pixels(tf, tf.constant(_encoded(fmt, (37, 11))))) == 37 * 11


def test_declared_pixels_of_forged_and_unknown_headers() -> None:
    tf = import_tensorflow()
    huge = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 2**32 - 1, 2**32 - 1, 8, 2, 0, 0, 0))
    assert int(declared_pixels(tf, tf.constant(huge))) >= 2**62  # clamped, not wrapped around to a small number
    top_down_bmp = bytearray(_encoded("BMP", (5, 4)))
    top_down_bmp[22:26] = struct.pack("<i", -4)
    assert int(declared_pixels(tf, tf.constant(bytes(top_down_bmp)))) == 20
    assert int(declared_pixels(tf, tf.constant(b"GIF"))) == 0  # truncated: no size read from past the end
    assert int(declared_pixels(tf, tf.constant(b"not an image"))) == 0


def test_the_serving_signature_refuses_an_image_over_the_cap_before_decoding(trained_run) -> None:
    tf = import_tensorflow()
    request, _ = trained_run
    loaded = tf.saved_model.load(str(request.output_dir / "models" / "scratch_cnn" / "serving"))
    assert int(loaded.max_pixels.numpy()) == DataConfig.max_pixels
    serve = loaded.signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"more than 40,000,000 pixels \(data.max_pixels\)"):
        serve(images=tf.constant([_encoded("PNG", (8, 8)), png_bomb()]))
    assert serve(images=tf.constant([_encoded("PNG", (64, 48))]))["probabilities"].shape[0] == 1


def test_predict_reports_an_image_over_the_cap_and_classifies_the_rest(
    trained_run, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    request, _ = trained_run
    (tmp_path / "bomb.png").write_bytes(png_bomb())
    (tmp_path / "fine.png").write_bytes(_encoded("PNG", (64, 48)))
    code = main(["predict", str(request.output_dir / "models" / "scratch_cnn"), str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 2  # bad input (see errors.py)
    assert captured.out.startswith(str(tmp_path / "fine.png"))
    assert f"{tmp_path / 'bomb.png'}: cannot classify: image declares more than 40,000,000 pixels" in captured.err
