"""Helpers of the backbone tests: the PyTorch reference fixtures and the documented evaluation preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
#: The offline backbones and their input sizes, as the reference implementation defines them.
OFFLINE_SIZES = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}
OFFLINE_NAMES = tuple(OFFLINE_SIZES)
#: The official EfficientNet evaluation crops ``size / (size + 32)`` of the shorter side.
CROP_PADDING = 32


def load_reference(name: str) -> dict[str, np.ndarray]:
    """Inputs and the original PyTorch model's outputs (see tests/fixtures/efficientnet_lite_make_reference.py)."""
    with np.load(FIXTURES / f"{name}_reference.npz") as data:
        return {key: data[key] for key in data.files}


def eval_preprocess(image: np.ndarray, size: int) -> np.ndarray:
    """As documented for the offline backbones: centre ``size / (size + 32)`` of the shorter side, bicubic
    resize to ``size``, float32 in [0, 1]."""
    height, width = image.shape[:2]
    side = int(min(height, width) * size / (size + CROP_PADDING))
    top, left = (height - side) // 2, (width - side) // 2
    crop = Image.fromarray(image[top : top + side, left : left + side]).resize((size, size), Image.BICUBIC)
    return np.asarray(crop, dtype=np.float32) / 255.0
