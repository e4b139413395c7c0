"""Image bytes of every kind the ingest stage must handle, and small datasets made of them (for tests)."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def noise(seed: int, size: tuple[int, int] = (24, 20), mode: str = "RGB") -> Image.Image:
    """A random picture: different seeds give different content (and hashes)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels).convert(mode)


def jpeg(seed: int, size: tuple[int, int] = (24, 20)) -> bytes:
    return encode(noise(seed, size), "JPEG", quality=90)


def png(seed: int, size: tuple[int, int] = (24, 20)) -> bytes:
    return encode(noise(seed, size), "PNG")


def truncated_jpeg(seed: int) -> bytes:
    data = jpeg(seed, (64, 64))
    return data[: len(data) // 2]


def cmyk_jpeg(seed: int) -> bytes:
    return encode(noise(seed).convert("CMYK"), "JPEG")


def sixteen_bit_png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return encode(Image.fromarray(rng.integers(0, 65535, size=(20, 24), dtype=np.uint16)), "PNG")


def palette_png_with_transparency(seed: int) -> bytes:
    return encode(noise(seed).convert("P"), "PNG", transparency=0)


def rgba_png(seed: int) -> bytes:
    return encode(noise(seed, mode="RGBA"), "PNG")


def animated_gif(seed: int) -> bytes:
    first, second = noise(seed), noise(seed + 1)
    return encode(first, "GIF", save_all=True, append_images=[second], duration=100)


def single_frame_gif(seed: int) -> bytes:
    return encode(noise(seed), "GIF")


def palette_bmp(seed: int) -> bytes:
    return encode(noise(seed).convert("P"), "BMP")


def rgb_bmp(seed: int) -> bytes:
    return encode(noise(seed), "BMP")


def webp(seed: int) -> bytes:
    return encode(noise(seed), "WEBP")


def tiff(seed: int) -> bytes:
    return encode(noise(seed), "TIFF")


def ico(seed: int) -> bytes:
    return encode(noise(seed, (16, 16)), "ICO")


def huge_png(width: int = 3000, height: int = 2000) -> bytes:
    """A PNG whose header declares width x height pixels; tiny on disk (one colour compresses well)."""
    return encode(Image.new("L", (width, height), 128), "PNG")


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return len(payload).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A small PNG whose header claims an enormous size: it must be refused before any pixel is decoded."""
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    pixels = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", pixels) + _png_chunk(b"IEND", b"")


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def simple_dataset(root: Path, classes: dict[str, tuple[int, int]], seed: int = 0) -> Path:
    """``train/<class>/`` and ``test/<class>/`` of small distinct JPEGs: classes maps name -> (train, test)."""
    for index, (name, (train, test)) in enumerate(sorted(classes.items())):
        for split, count in (("train", train), ("test", test)):
            for i in range(count):
                content = seed * 100_000 + index * 1000 + i + (500 if split == "test" else 0)
                write(root / split / name / f"{i:03d}.jpg", jpeg(content))
    return root
