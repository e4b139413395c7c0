"""Image checks: what is kept, transcoded or rejected, and that what is kept decodes in TensorFlow."""

from __future__ import annotations

import io

import image_corpus as corpus
import numpy as np
import pytest
from PIL import Image

from hubpipe.components.common.image_formats import to_rgb
from hubpipe.components.ingest import quarantine as q
from hubpipe.components.ingest.images import ImageInfo, Rejection, inspect_image, tf_decoded_size, transcode

LIMIT = 1_000_000


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: b"", q.EMPTY_FILE),
        (lambda: corpus.truncated_jpeg(1), q.TRUNCATED),
        (lambda: b"just some text, named like a photo\n", q.NOT_AN_IMAGE),
        (lambda: bytes(range(256)) * 8, q.NOT_AN_IMAGE),
        (lambda: corpus.animated_gif(1), q.ANIMATED),
        (lambda: corpus.huge_png(3000, 2000), q.TOO_MANY_PIXELS),
        (corpus.png_bomb, q.TOO_MANY_PIXELS),
        (lambda: corpus.ico(1), q.UNSUPPORTED_FORMAT),
        (lambda: b"\0\0\0\x18ftypheic" + bytes(64), q.UNSUPPORTED_FORMAT),
    ],
    ids=["empty", "truncated", "text", "binary", "animated", "huge", "bomb", "ico", "heic"],
)
def test_rejections_have_the_right_reason(make, reason: str) -> None:
    verdict = inspect_image(make(), LIMIT)
    assert isinstance(verdict, Rejection)
    assert verdict.reason == reason
    assert verdict.detail


@pytest.mark.parametrize(
    ("make", "fmt"),
    [
        (lambda: corpus.jpeg(2), "jpeg"),
        (lambda: corpus.png(2), "png"),
        (lambda: corpus.single_frame_gif(2), "gif"),
        (lambda: corpus.rgb_bmp(2), "bmp"),
        (lambda: corpus.encode(corpus.noise(2).convert("L"), "JPEG"), "jpeg"),
        (lambda: corpus.encode(corpus.noise(2).convert("P"), "PNG"), "png"),
    ],
    ids=["jpeg", "png", "gif", "bmp", "grey-jpeg", "palette-png-opaque"],
)
def test_tensorflow_native_images_keep_their_bytes(make, fmt: str) -> None:
    data = make()
    verdict = inspect_image(data, LIMIT)
    assert verdict == ImageInfo(fmt, 24, 20, "")
    assert tf_decoded_size(data) == (20, 24)


@pytest.mark.parametrize(
    ("make", "reason", "fmt"),
    [
        (lambda: corpus.cmyk_jpeg(3), "cmyk_jpeg", "jpeg"),
        (lambda: corpus.sixteen_bit_png(3), "16_bit_png", "png"),
        (lambda: corpus.palette_png_with_transparency(3), "alpha", "png"),
        (lambda: corpus.rgba_png(3), "alpha", "png"),
        (lambda: corpus.palette_bmp(3), "palette_or_compressed_bmp", "png"),
        (lambda: corpus.webp(3), "webp_format", "png"),
        (lambda: corpus.tiff(3), "tiff_format", "png"),
    ],
    ids=["cmyk", "16-bit", "palette-alpha", "rgba", "palette-bmp", "webp", "tiff"],
)
def test_images_tensorflow_cannot_use_as_they_are_are_transcoded_to_rgb(make, reason: str, fmt: str) -> None:
    data = make()
    verdict = inspect_image(data, LIMIT)
    assert verdict == ImageInfo(fmt, 24, 20, reason)
    encoded = transcode(data, verdict)
    with Image.open(io.BytesIO(encoded)) as image:
        assert (image.format.lower(), image.mode, image.size) == (fmt, "RGB", (24, 20))
    assert tf_decoded_size(encoded) == (20, 24)


def test_png_named_jpg_is_recognised_by_content() -> None:
    assert inspect_image(corpus.png(4), LIMIT).format == "png"


def test_sixteen_bit_samples_are_scaled_not_clipped() -> None:
    wide = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)
    rgb = np.asarray(to_rgb(Image.fromarray(wide)))
    assert rgb[0, :, 0].tolist() == [0, 1, 255, 128]


def test_transparent_pixels_become_white() -> None:
    image = Image.new("RGBA", (2, 1), (10, 20, 30, 0))
    image.putpixel((1, 0), (10, 20, 30, 255))
    rgb = np.asarray(to_rgb(image))
    assert rgb[0, 0].tolist() == [255, 255, 255]
    assert rgb[0, 1].tolist() == [10, 20, 30]


def test_cmyk_transcode_keeps_the_colours() -> None:
    gradient = np.linspace(0, 255, 48 * 40 * 3).reshape(40, 48, 3).astype(np.uint8)
    data = corpus.encode(Image.fromarray(gradient).convert("CMYK"), "JPEG", quality=95)
    with Image.open(io.BytesIO(data)) as image:
        expected = np.asarray(image.convert("RGB"), dtype=float)
    with Image.open(io.BytesIO(transcode(data, inspect_image(data, LIMIT)))) as image:
        got = np.asarray(image.convert("RGB"), dtype=float)
    assert np.abs(got - expected).mean() < 8
