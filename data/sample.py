"""The embedded sample dataset: ten classes of procedurally drawn objects and textures.

Generated, not shipped: ``generate(out_dir, seed)`` writes ``train/<class>/*.jpg`` and
``test/<class>/*.jpg`` (75 and 25 images per class by default) and the same seed always gives the same
bytes. Each class is a kind of object or texture (stars, spirals, checkerboards, ...); everything else is
random per image: pose, scale, colours, background gradient and clutter, blur, noise, JPEG quality, image
size and aspect ratio. Colour and position carry no class information, so a small CNN trained from scratch
on a few dozen images per class has little to hold on to, while a pretrained feature extractor sees shapes
and textures it already knows.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from hubpipe.pipeline.core.locking import TMP_PATTERN, owned_tmp, remove_dead_tmp
from hubpipe.pipeline.core.progress import progress

LOG = logging.getLogger(__name__)

#: Bump when the drawing code changes the bytes it produces (it is part of the cache key).
GENERATOR_VERSION = 1
CANVAS = 256  # objects are drawn on a square canvas, then the image is resized to its own size

Rng = np.random.Generator
Painter = Callable[[ImageDraw.ImageDraw, Rng, tuple[float, float], float, tuple[int, int, int]], None]


@dataclass(frozen=True)
class SampleSpec:
    """Sizes of the generated dataset."""

    seed: int = 0
    train_per_class: int = 75
    test_per_class: int = 25


# ---------------------------------------------------------------------------------------------------------------
# Colours and geometry


def _colour(rng: Rng) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, size=3))  # type: ignore[return-value]


def _contrasting(rng: Rng, background: np.ndarray) -> tuple[int, int, int]:
    """A random colour that stands out from the mean background colour."""
    mean = background.reshape(-1, 3).mean(axis=0)
    for _ in range(20):
        colour = rng.integers(0, 256, size=3)
        if np.abs(colour - mean).sum() > 180:
            break
    return tuple(int(c) for c in colour)  # type: ignore[return-value]


def _rotate(points: np.ndarray, angle: float, centre: tuple[float, float]) -> list[tuple[float, float]]:
    c, s = math.cos(angle), math.sin(angle)
    rotated = points @ np.array([[c, s], [-s, c]])
    return [(float(x + centre[0]), float(y + centre[1])) for x, y in rotated]


def _regular_polygon(sides: int, radius: float) -> np.ndarray:
    angles = np.linspace(0, 2 * math.pi, sides, endpoint=False)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1) * radius


# ---------------------------------------------------------------------------------------------------------------
# The ten classes: each painter draws one object of its kind centred at ``centre`` with size ``radius``.


def _stars(draw: ImageDraw.ImageDraw, rng: Rng, centre: tuple[float, float], radius: float, colour) -> None:
    points = int(rng.integers(5, 8))
    angles = np.linspace(0, 2 * math.pi, 2 * points, endpoint=False)
    radii = np.where(np.arange(2 * points) % 2 == 0, radius, radius * rng.uniform(0.35, 0.5))
    outline = np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
    draw.polygon(_rotate(outline, rng.uniform(0, 2 * math.pi), centre), fill=colour)


def _rings(draw: ImageDraw.ImageDraw, rng: Rng, centre: tuple[float, float], radius: float, colour) -> None:
    width = max(3, int(radius * rng.uniform(0.12, 0.2)))
    for scale in np.arange(1.0, 0.2, -rng.uniform(0.25, 0.4)):
        r = radius * scale
        draw.ellipse([centre[0] - r, centre[1] - r, centre[0] + r, centre[1] + r], outline=colour, width=width)


def _checkerboard(draw: ImageDraw.ImageDraw, rng: Rng, centre: tuple[float, float], radius: float, colour) -> None:
    cells = int(rng.integers(4, 7))
    step = 2 * radius / cells
    angle = rng.uniform(0, math.pi / 2)
    for i in range(cells):
        for j in range(cells):
            if (i + j) % 2:
                continue
            x0, y0 = -radius + i * step, -radius + j * step
            square = np.array([[x0, y0], [x0 + step, y0], [x0 + step, y0 + step], [x0, y0 + step]])
            draw.polygon(_rotate(square, angle, centre), fill=colour)


def _stripes(draw: ImageDraw.ImageDraw, rng: Rng, centre: tuple[float, float], radius: float, colour) -> None:
    count = int(rng.integers(4, 8))
    angle = rng.uniform(0, math.pi)
    width = 2 * radius / (2 * count)
    for k in range(count):
        x0 = -radius + 2 * k * width
        band = np.array([[x0, -radius], [x0 + width, -radius], [x0 + width, radius], [x0, radius]])
        draw.polygon(_rotate(band, angle, centre), fill=colour)


def _spiral(draw: ImageDraw.ImageDraw, rng: Rng, centre: tuple[float, float], radius: float, colour) -> None:
    turns = rng.uniform(2.5, 4.0)
    t = np.linspace(0, turns * 2 * math.pi, 400)
    r = radius * t / t[-1]
    phase = rng.uniform(0, 2 * math.pi) * (1 if rng.random() < 0.5 else -1)
    curve = np.stack([np.cos(t + phase) * r, np.sin(t + phase) * r], axis=1)
    draw.line(_rotate(curve, 0.0, centre), fill=colour, width=max(3, int(radius * 0.09)), joint="curve")


def _polka_dots(draw: ImageDraw.ImageDraw, rng: Rng, centre: tuple[float, float], radius: float, colour) -> None:
    dot = radius * rng.uniform(0.08, 0.13)
    spacing = dot * rng.uniform(2.6, 3.4)
    offsets = np.arange(-radius, radius + 1e-6, spacing)
    angle = rng.uniform(0, math.pi)
    grid = np.array([(x, y) for x in offsets for y in offsets if x * x + y * y <= radius * radius])
    for x, y in _rotate(grid, angle, centre):
        draw.ellipse([x - dot, y - dot, x + dot, y + dot], fill=colour)


def _waves(draw: ImageDraw.ImageDraw, rng: Rng, centre: tuple[float, float], radius: float, colour) -> None:
    lines = int(rng.integers(3, 6))
    amplitude = radius * rng.uniform(0.1, 0.2)
    frequency = rng.uniform(1.5, 3.0)
    angle = rng.uniform(0, math.pi)
    xs = np.linspace(-radius, radius, 120)
    for k in range(lines):
        y0 = -radius * 0.8 + k * 1.6 * radius / max(1, lines - 1)
        curve = np.stack([xs, y0 + amplitude * np.sin(xs / radius * frequency * math.pi)], axis=1)
        draw.line(_rotate(curve, angle, centre), fill=colour, width=max(3, int(radius * 0.08)), joint="curve")


def _crosses(draw: ImageDraw.ImageDraw, rng: Rng, centre: tuple[float, float], radius: float, colour) -> None:
    arm = rng.uniform(0.22, 0.32) * radius
    cross = np.array(
        [
            [-arm, -radius],
            [arm, -radius],
            [arm, -arm],
            [radius, -arm],
            [radius, arm],
            [arm, arm],
            [arm, radius],
            [-arm, radius],
            [-arm, arm],
            [-radius, arm],
            [-radius, -arm],
            [-arm, -arm],
        ]
    )
    draw.polygon(_rotate(cross, rng.uniform(0, math.pi / 2), centre), fill=colour)


def _honeycomb(draw: ImageDraw.ImageDraw, rng: Rng, centre: tuple[float, float], radius: float, colour) -> None:
    cell = radius * rng.uniform(0.2, 0.28)
    hexagon = _regular_polygon(6, cell)
    angle = rng.uniform(0, math.pi / 3)
    width = max(2, int(cell * 0.18))
    for q in range(-4, 5):
        for r in range(-4, 5):
            x = cell * 1.5 * q
            y = cell * math.sqrt(3) * (r + q / 2)
            if x * x + y * y > radius * radius:
                continue
            ((cx, cy),) = _rotate(np.array([[x, y]]), angle, centre)
            draw.polygon(_rotate(hexagon, angle, (cx, cy)), outline=colour, width=width)


def _zigzag(draw: ImageDraw.ImageDraw, rng: Rng, centre: tuple[float, float], radius: float, colour) -> None:
    lines = int(rng.integers(2, 5))
    teeth = int(rng.integers(4, 8))
    height = radius * rng.uniform(0.15, 0.25)
    angle = rng.uniform(0, math.pi)
    xs = np.linspace(-radius, radius, 2 * teeth + 1)
    for k in range(lines):
        y0 = -radius * 0.7 + k * 1.4 * radius / max(1, lines - 1)
        ys = y0 + np.where(np.arange(xs.size) % 2 == 0, -height, height)
        draw.line(
            _rotate(np.stack([xs, ys], axis=1), angle, centre),
            fill=colour,
            width=max(3, int(radius * 0.08)),
            joint="curve",
        )


CLASSES: dict[str, Painter] = {
    "checkerboard": _checkerboard,
    "crosses": _crosses,
    "honeycomb": _honeycomb,
    "polka_dots": _polka_dots,
    "rings": _rings,
    "spirals": _spiral,
    "stars": _stars,
    "stripes": _stripes,
    "waves": _waves,
    "zigzags": _zigzag,
}


# ---------------------------------------------------------------------------------------------------------------
# Backgrounds, clutter and degradation


def _background(rng: Rng) -> np.ndarray:
    """A random two-colour gradient in a random direction, as float RGB."""
    a, b = rng.uniform(0, 255, size=3), rng.uniform(0, 255, size=3)
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:CANVAS, 0:CANVAS] / (CANVAS - 1)
    t = np.clip((xs - 0.5) * math.cos(angle) + (ys - 0.5) * math.sin(angle) + 0.5, 0, 1)[..., None]
    return a * (1 - t) + b * t


def _clutter(draw: ImageDraw.ImageDraw, rng: Rng) -> None:
    """Distractors that belong to no class: random blobs, boxes and straight strokes."""
    for _ in range(int(rng.integers(3, 9))):
        x, y = rng.uniform(0, CANVAS, size=2)
        size = rng.uniform(6, 40)
        colour = _colour(rng)
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.ellipse([x - size, y - size * rng.uniform(0.4, 1), x + size, y + size], fill=colour)
        elif kind == 1:
            draw.rectangle([x, y, x + size, y + size * rng.uniform(0.3, 1.5)], fill=colour)
        else:
            x2, y2 = rng.uniform(0, CANVAS, size=2)
            draw.line([x, y, x2, y2], fill=colour, width=int(rng.integers(1, 4)))


def _render(painter: Painter, rng: Rng) -> Image.Image:
    background = _background(rng)
    image = Image.fromarray(background.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    _clutter(draw, rng)
    radius = rng.uniform(0.22, 0.42) * CANVAS
    margin = radius * 0.8
    centre = (rng.uniform(margin, CANVAS - margin), rng.uniform(margin, CANVAS - margin))
    painter(draw, rng, centre, radius, _contrasting(rng, background))
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.5))))
    pixels = np.asarray(image, dtype=np.float32)
    pixels += rng.normal(0, rng.uniform(2, 12), size=pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _image_rng(seed: int, split: str, label: str, index: int) -> Rng:
    key = hashlib.sha256(f"{GENERATOR_VERSION}/{seed}/{split}/{label}/{index}".encode()).digest()
    return np.random.default_rng(int.from_bytes(key[:8], "little"))


def render_jpeg(seed: int, split: str, label: str, index: int) -> bytes:
    """The JPEG bytes of one sample image; a pure function of its arguments."""
    rng = _image_rng(seed, split, label, index)
    image = _render(CLASSES[label], rng)
    side = int(rng.integers(160, 400))
    aspect = float(rng.uniform(0.65, 1.6))
    size = (max(96, int(side * math.sqrt(aspect))), max(96, int(side / math.sqrt(aspect))))
    image = image.resize(size, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(55, 95)))
    return buffer.getvalue()


def generate(out_dir: Path, spec: SampleSpec = SampleSpec()) -> Path:
    """Writes the dataset into ``out_dir`` (created; must not hold other files) and returns it."""
    out_dir = Path(out_dir)
    jobs = [
        (split, label, index)
        for split, count in (("train", spec.train_per_class), ("test", spec.test_per_class))
        for label in CLASSES
        for index in range(count)
    ]
    for split, label, index in progress(jobs, desc="sample images", unit="img"):
        path = out_dir / split / label / f"{label}_{split}_{index:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(render_jpeg(spec.seed, split, label, index))
    LOG.debug("wrote %d sample images (%d classes) to %s", len(jobs), len(CLASSES), out_dir)
    return out_dir


def ensure_sample_dataset(cache_root: Path, spec: SampleSpec = SampleSpec()) -> Path:
    """The sample dataset for ``spec`` under ``cache_root``, generated once (atomically) and then reused."""
    name = f"sample-v{GENERATOR_VERSION}-seed{spec.seed}-{spec.train_per_class}x{spec.test_per_class}"
    final = Path(cache_root) / "datasets" / name
    if final.is_dir():
        return final
    remove_dead_tmp(final.parent, TMP_PATTERN)
    with owned_tmp(final.with_name(f".{name}.tmp-{os.getpid()}")) as tmp:
        shutil.rmtree(tmp, ignore_errors=True)
        LOG.info("generating the sample dataset (seed %d) into %s", spec.seed, final)
        generate(tmp, spec)
        try:
            tmp.rename(final)
        except OSError:  # another process finished first
            if not final.is_dir():
                raise
    return final
