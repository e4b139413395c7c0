"""Image checks and transcoding with Pillow, and the TensorFlow decodability decision.

An image is kept byte for byte when TensorFlow's ``tf.io.decode_image(..., channels=3,
expand_animations=False)`` decodes it to the same picture Pillow sees: baseline and progressive RGB or
grayscale JPEG (including MPO camera files, whose first picture is used), 8-bit PNG without transparency
(grayscale, RGB and palette PNG: verified to decode identically), single-frame GIF without transparency, and
uncompressed 24-bit BMP. Everything else that Pillow reads is re-encoded as RGB (``image/transcoded`` = 1; the
decision and the conversion are :mod:`hubpipe.components.common.image_formats`, which prediction shares):

* CMYK JPEG (TensorFlow ignores the Adobe inversion) -> JPEG, quality 95;
* 16-bit PNG (scaled to 8 bits), images with an alpha channel or a transparent colour (composited on white),
  palette or 1-bit BMP (TensorFlow ignores BMP palettes), WebP, TIFF and AVIF -> PNG.

Animated GIF/PNG/WebP and multi-page TIFF are quarantined as ``animated``: which frame is "the" image is a
guess the data owner should make. File extensions are ignored; the content decides the format. EXIF
orientation is not applied, as TensorFlow does not apply it either (training and serving see the same pixels).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from hubpipe.components.common.image_formats import (
    TF_NATIVE,
    encode_rgb,
    open_image,
    tf_decoded_size,
    transcode_reason,
    transcoded_format,
)
from hubpipe.components.ingest import quarantine as q
from hubpipe.components.ingest.io_errors import is_machine_error

#: Formats recognised only to name them in the quarantine detail.
IDENTIFY_ONLY = ("ICO", "PPM", "PSD", "JPEG2000", "PCX", "SGI", "DDS", "QOI", "ICNS")
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1")


@dataclass(frozen=True)
class ImageInfo:
    """An image that will become an example. ``transcode`` says why it is re-encoded ("" keeps the bytes)."""

    format: str  # the example's image/format: jpeg, png, gif or bmp (after transcoding)
    width: int
    height: int
    transcode: str = ""


@dataclass(frozen=True)
class Rejection:
    reason: str
    detail: str


def inspect_image(data: bytes, max_pixels: int) -> ImageInfo | Rejection:
    """Decides what happens to one file's bytes: kept, transcoded, or rejected with a reason.

    The pixel limit is checked on the header before any pixel is decoded (decompression bombs). Pillow's own
    ``Image.MAX_IMAGE_PIXELS`` guard is handled explicitly: its warning is silenced in favour of ``max_pixels``
    and its error (above twice its limit) is a ``too_many_pixels`` rejection as well.
    """
    if not data:
        return Rejection(q.EMPTY_FILE, "the file is empty (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with open_image(data) as image:
                header = _check_header(image, data, max_pixels)
        except UnidentifiedImageError:
            return _identify_unsupported(data)
        except Image.DecompressionBombError as exc:
            return Rejection(q.TOO_MANY_PIXELS, str(exc))
        except Exception as exc:
            return _decode_failure(exc)
        if isinstance(header, Rejection):
            return header
        failure = _decode_fully(data)
    if failure is not None:
        return failure
    if not header.transcode and tf_decoded_size(data) != (header.height, header.width):
        return ImageInfo("png", header.width, header.height, "tf_cannot_decode")
    return header


def _check_header(image: Image.Image, data: bytes, max_pixels: int) -> ImageInfo | Rejection:
    width, height = image.size
    if width <= 0 or height <= 0:
        return Rejection(q.CORRUPT, f"invalid size {width}x{height}")
    if width * height > max_pixels:
        return Rejection(q.TOO_MANY_PIXELS, f"{width}x{height} = {width * height:,} pixels, limit {max_pixels:,}")
    frames = getattr(image, "n_frames", 1)
    if frames > 1 and image.format != "MPO":
        return Rejection(q.ANIMATED, f"{image.format} with {frames} frames")
    reason = transcode_reason(image, data)
    if reason:
        return ImageInfo(transcoded_format(image.format), width, height, reason)
    return ImageInfo(TF_NATIVE[image.format], width, height)


def _decode_fully(data: bytes) -> Rejection | None:
    """Checks the whole file: structure (``verify``) and every pixel (``load``)."""
    try:
        with open_image(data) as image:
            image.verify()
        with open_image(data) as image:
            image.load()
    except Exception as exc:
        return _decode_failure(exc)
    return None


def _decode_failure(exc: Exception) -> Rejection:
    """What a decoder's exception says about the image; the machine's errors (no memory, an OSError with an
    errno: not raised for bad bytes) are raised again, as they say nothing about it."""
    if is_machine_error(exc):
        raise exc
    message = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError) or "truncated" in message.lower():
        return Rejection(q.TRUNCATED, message)
    return Rejection(q.CORRUPT, f"cannot decode: {message}")


def _identify_unsupported(data: bytes) -> Rejection:
    try:
        with open_image(data, IDENTIFY_ONLY) as image:
            name = image.format
    except Exception as exc:
        if is_machine_error(exc):
            raise
        name = "HEIF" if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS else ""
    if name:
        return Rejection(q.UNSUPPORTED_FORMAT, f"{name} images are not supported; convert them to JPEG or PNG")
    kind = "text" if _looks_like_text(data) else "binary data"
    return Rejection(q.NOT_AN_IMAGE, f"not a JPEG, PNG, GIF, BMP, WebP, TIFF or AVIF image ({kind})")


def _looks_like_text(data: bytes) -> bool:
    head = data[:512]
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\0" not in head


def transcode(data: bytes, info: ImageInfo) -> bytes:
    """Re-encodes ``data`` as 8-bit RGB in ``info.format`` (PNG, or JPEG for JPEG sources)."""
    return encode_rgb(data, info.format)
