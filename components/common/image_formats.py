"""Which image bytes TensorFlow decodes as they are, and the conversion of the others: shared by ingest (which
stores every image in a format TensorFlow decodes) and prediction (which must convert an image exactly as
ingest converted the training images).

An image is kept byte for byte when TensorFlow's ``tf.io.decode_image(..., channels=3,
expand_animations=False)`` decodes it to the same picture Pillow sees; everything else Pillow reads (CMYK
JPEG, 16-bit PNG, alpha, palette or compressed BMP, WebP, TIFF, AVIF) is re-encoded as 8-bit RGB: JPEG
(quality 95) for JPEG sources, PNG otherwise. :mod:`hubpipe.components.ingest.images` says which and why.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

from PIL import Image, UnidentifiedImageError

#: Pillow format -> the example's ``image/format`` when the bytes are kept.
TF_NATIVE = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "GIF": "gif", "BMP": "bmp"}
#: Still-image formats Pillow reads but TensorFlow does not: always transcoded.
TRANSCODED_ONLY = ("WEBP", "TIFF", "AVIF")
#: The only decoders Pillow may use on untrusted input (no EPS/PDF: they call external programs).
OPEN_FORMATS = ("JPEG", "PNG", "GIF", "BMP", *TRANSCODED_ONLY)
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
JPEG_QUALITY = 95
#: File name suffixes of the formats above (listing folders of images to classify).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".avif")
DESCRIBED = "JPEG, PNG, GIF, BMP, WebP, TIFF or AVIF"


class ImageRefused(ValueError):
    """Image bytes that are not converted for a model: why, in a few words."""


def open_image(data: bytes, formats: tuple[str, ...] = OPEN_FORMATS) -> Image.Image:
    return Image.open(io.BytesIO(data), formats=list(formats))


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ALPHA_MODES or "transparency" in image.info


def png_bit_depth(data: bytes) -> int:
    """The bit depth from the PNG header (IHDR is always the first chunk)."""
    return data[24] if len(data) > 24 else 8


def transcode_reason(image: Image.Image, data: bytes) -> str:
    """Why the header says the image must be re-encoded ("" when TensorFlow may decode it as it is)."""
    fmt, mode = image.format, image.mode
    if fmt in TRANSCODED_ONLY:
        return f"{fmt.lower()}_format"
    if fmt in ("JPEG", "MPO"):
        if mode == "CMYK":
            return "cmyk_jpeg"
        return "" if mode in ("L", "RGB") else f"jpeg_mode_{mode}"
    if fmt == "PNG" and (png_bit_depth(data) == 16 or mode in SIXTEEN_BIT_MODES):
        return "16_bit_png"
    if has_alpha(image):
        return "alpha"
    if fmt == "BMP" and (mode != "RGB" or image.info.get("compression", 0) != 0):
        return "palette_or_compressed_bmp"
    return ""


def transcoded_format(pillow_format: str | None) -> str:
    """The format an image of ``pillow_format`` is re-encoded in: JPEG stays JPEG, anything else becomes PNG."""
    return "jpeg" if pillow_format in ("JPEG", "MPO") else "png"


def tf_decoded_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) of what TensorFlow decodes from ``data``, or None when it cannot."""
    from hubpipe.pipeline.core.runtime import import_tensorflow

    tf = import_tensorflow()
    try:
        shape = tf.io.decode_image(data, channels=3, expand_animations=False).shape
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError, ValueError):
        return None
    return int(shape[0]), int(shape[1])


def encode_rgb(data: bytes, output_format: str) -> bytes:
    """Re-encodes ``data`` as 8-bit RGB in ``output_format`` (``png``, or ``jpeg`` at :data:`JPEG_QUALITY`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with open_image(data) as image:
            rgb = to_rgb(image)
    buffer = io.BytesIO()
    if output_format == "jpeg":
        rgb.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        rgb.save(buffer, format="PNG")
    return buffer.getvalue()


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: 16-bit samples are scaled to 8 bits, transparency is composited on white."""
    if image.mode in SIXTEEN_BIT_MODES:
        import numpy as np

        wide = np.asarray(image).astype(np.int64)
        scaled = np.clip(wide, 0, 65535) // 257
        return Image.fromarray(scaled.astype(np.uint8), mode="L").convert("RGB")
    if has_alpha(image):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def model_input(data: bytes, max_pixels: int) -> bytes:
    """``data`` as a model saw its training images: the bytes themselves when ingest kept them, else the same
    re-encoding ingest made (:class:`ImageRefused` says why an image is not converted).

    The header's pixel count is checked against ``max_pixels`` before any pixel is decoded; animations (other
    than a camera's MPO) are refused, as ingest quarantines them.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with open_image(data) as image:
                header = _header(image, data, max_pixels)
                image.load()
        except ImageRefused:
            raise
        except UnidentifiedImageError:
            raise ImageRefused(f"not a readable {DESCRIBED} image") from None
        except MemoryError:
            raise
        except Exception as exc:  # Pillow's decoders raise OSError, SyntaxError, ValueError... for bad bytes
            raise ImageRefused(f"cannot decode: {str(exc) or type(exc).__name__}") from None
    pillow_format, reason, size = header
    if reason:
        return encode_rgb(data, transcoded_format(pillow_format))
    if tf_decoded_size(data) != size:
        return encode_rgb(data, "png")
    return data


def _header(image: Image.Image, data: bytes, max_pixels: int) -> tuple[Any, str, tuple[int, int]]:
    """(Pillow format, transcode reason, (height, width)) of an image a model may see; ImageRefused otherwise."""
    width, height = image.size
    if width * height > max_pixels:
        raise ImageRefused(f"image declares {width}x{height} pixels, over data.max_pixels ({max_pixels:,})")
    frames = getattr(image, "n_frames", 1)
    if frames > 1 and image.format != "MPO":
        raise ImageRefused(f"{image.format} with {frames} frames: which frame to classify is not clear")
    return image.format, transcode_reason(image, data), (height, width)
