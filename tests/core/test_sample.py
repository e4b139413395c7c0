"""The embedded sample dataset's layout and variety."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from hubpipe.data.sample import CLASSES, SampleSpec, ensure_sample_dataset, render_jpeg


def test_layout_and_counts(tmp_path: Path) -> None:
    root = ensure_sample_dataset(tmp_path, SampleSpec(seed=3, train_per_class=4, test_per_class=2))
    assert sorted(p.name for p in (root / "train").iterdir()) == sorted(CLASSES)
    assert len(CLASSES) == 10
    for label in CLASSES:
        assert len(list((root / "train" / label).glob("*.jpg"))) == 4
        assert len(list((root / "test" / label).glob("*.jpg"))) == 2
    # Reused, not regenerated.
    marker = root / "train" / "stars" / "marker"
    marker.write_text("x")
    assert ensure_sample_dataset(tmp_path, SampleSpec(seed=3, train_per_class=4, test_per_class=2)) == root
    assert marker.exists()


def test_images_vary_in_size_and_aspect() -> None:
    sizes = set()
    for index in range(12):
        data = render_jpeg(0, "train", "spirals", index)
        image = Image.open(io.BytesIO(data))
        assert image.format == "JPEG" and image.mode == "RGB"
        sizes.add(image.size)
    aspects = [w / h for w, h in sizes]
    assert len(sizes) == 12
    assert min(aspects) < 0.9 and max(aspects) > 1.1


def test_colour_carries_no_class_information() -> None:
    """Mean colours of two classes overlap: class identity is shape and texture, not colour."""
    import numpy as np

    def mean_colours(label: str) -> np.ndarray:
        return np.array(
            [
                np.asarray(Image.open(io.BytesIO(render_jpeg(0, "train", label, i)))).reshape(-1, 3).mean(0)
                for i in range(20)
            ]
        )

    stars, rings = mean_colours("stars"), mean_colours("rings")
    gap = np.abs(stars.mean(0) - rings.mean(0))
    spread = np.minimum(stars.std(0), rings.std(0))
    assert (gap < spread).all()
