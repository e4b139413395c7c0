"""Small image datasets for validation tests."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def jpeg(seed: int, size: tuple[int, int] = (24, 20)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def split_dataset(root: Path, classes: dict[str, tuple[int, int]], seed: int = 0) -> Path:
    """``train/<class>/`` and ``test/<class>/`` of distinct JPEGs: classes maps name -> (train, test)."""
    for index, (name, counts) in enumerate(sorted(classes.items())):
        for split, count in zip(("train", "test"), counts, strict=True):
            for i in range(count):
                path = root / split / name / f"{i:03d}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(jpeg(seed * 100_000 + index * 1000 + i + (500 if split == "test" else 0)))
    return root
