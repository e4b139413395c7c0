"""Named datasets that ``--data`` accepts besides paths and URLs.

A preset is an archive at a public URL. ``food101_10pct`` is the archive of the classic transfer-learning
experiment: 10 Food-101 classes with 10% of their training images (75 per class) and all their test images
(250 per class), laid out as ``10_food_classes_10_percent/train/<class>/`` and ``.../test/<class>/``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    name: str
    url: str
    description: str
    sha256: str = ""  # checked when known; data.download_sha256 overrides it


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            name="food101_10pct",
            url="https://storage.googleapis.com/ztm_tf_course/food_vision/10_food_classes_10_percent.zip",
            description="10 Food-101 classes, 10% of the training images (750 train, 2500 test images)",
        ),
    )
}


def get_preset(name: str) -> Preset | None:
    return PRESETS.get(name)
