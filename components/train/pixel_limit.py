"""The pixel cap of the serving model and ``hubpipe predict``: checked on the image header, before decoding.

Decoding allocates width x height x 3 bytes whatever the file's size: a 746 KB PNG that declares 16000x16000
pixels costs 0.7 GB. Ingest refuses such files by their header (``data.max_pixels``, Pillow); here the same cap
is applied with TensorFlow ops only, so that it can live inside the serving signature: the header's width
and height are read the way TensorFlow's own decoders read them (PNG's IHDR, GIF's logical screen, BMP's
info header, JPEG's frame header via ``tf.io.extract_jpeg_shape``).
"""

from __future__ import annotations

from typing import Any

HEADER_BYTES = 32
_PNG, _GIF, _BMP, _JPEG = (137, 80, 78, 71), (71, 73, 70), (66, 77), (255, 216)
#: Each side is clamped to this before multiplying, so a forged header cannot overflow int64 to a small value.
_MAX_SIDE = 2**31


def _starts_with(tf: Any, header: Any, magic: tuple[int, ...]) -> Any:
    return tf.reduce_all(tf.equal(header[: len(magic)], tf.constant(magic, tf.int64)))


def _integer(tf: Any, header: Any, offset: int, size: int, big_endian: bool) -> Any:
    weights = [256**k for k in range(size)]
    weights = weights[::-1] if big_endian else weights
    return tf.reduce_sum(header[offset : offset + size] * tf.constant(weights, tf.int64))


def _signed32(tf: Any, value: Any) -> Any:
    return tf.abs(tf.where(value >= 2**31, value - 2**32, value))


def declared_pixels(tf: Any, encoded: Any) -> Any:
    """width * height (int64 scalar tensor) that decoding ``encoded`` would allocate; 0 for unknown formats."""
    padded = tf.strings.join([encoded, tf.constant(b"\0" * HEADER_BYTES)])
    header = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, 0, HEADER_BYTES), tf.uint8), tf.int64)

    def area(width: Any, height: Any) -> Any:
        return tf.minimum(width, _MAX_SIDE) * tf.minimum(height, _MAX_SIDE)

    png = area(_integer(tf, header, 16, 4, True), _integer(tf, header, 20, 4, True))
    gif = area(_integer(tf, header, 6, 2, False), _integer(tf, header, 8, 2, False))
    bmp = area(_signed32(tf, _integer(tf, header, 18, 4, False)), _signed32(tf, _integer(tf, header, 22, 4, False)))

    def jpeg() -> Any:
        shape = tf.cast(tf.io.extract_jpeg_shape(encoded), tf.int64)
        return area(shape[0], shape[1])

    zero = tf.constant(0, tf.int64)
    pixels = tf.cond(_starts_with(tf, header, _JPEG), jpeg, lambda: zero)
    pixels = tf.where(_starts_with(tf, header, _BMP), bmp, pixels)
    pixels = tf.where(_starts_with(tf, header, _GIF), gif, pixels)
    return tf.where(_starts_with(tf, header, _PNG), png, pixels)


def too_many_pixels_message(max_pixels: int) -> str:
    return f"image declares more than {max_pixels:,} pixels (data.max_pixels); it is not decoded"


def check_pixels(tf: Any, encoded: Any, max_pixels: int) -> Any:
    """An assertion op that fails with a clear message when ``encoded`` declares more than ``max_pixels``."""
    return tf.debugging.assert_less_equal(
        declared_pixels(tf, encoded), tf.constant(max_pixels, tf.int64), message=too_many_pixels_message(max_pixels)
    )
