"""Pictures of an evaluation, drawn with Pillow: the confusion matrix, misclassified test images, a sprite.

Each function returns an RGB ``PIL.Image``; the caller saves it as PNG and logs it to TensorBoard.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)
GOOD = (0, 110, 40)
BAD = (180, 20, 20)
#: Confusion-matrix cells get smaller with more classes, within these bounds (pixels).
CELL_MAX, CELL_MIN = 48, 10
MATRIX_SIDE = 640
MARGIN = 8


@dataclass(frozen=True)
class Mistake:
    """A misclassified test image: its bytes, true and predicted class, and the predicted probability."""

    image: bytes
    true_name: str
    predicted_name: str
    probability: float


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _text_width(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, text: str) -> int:
    left, _top, right, _bottom = font.getbbox(text)
    return int(right - left)


def _shorten(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> str:
    if _text_width(font, text) <= width:
        return text
    while text and _text_width(font, text + "…") > width:
        text = text[:-1]
    return text + "…"


def _cell_colour(share: float) -> tuple[int, int, int]:
    """White for 0, deep blue for 1 (share of the row's examples)."""
    return (int(255 - 225 * share), int(255 - 170 * share), int(255 - 60 * share))


def confusion_matrix_image(matrix: np.ndarray, class_names: Sequence[str], title: str) -> Image.Image:
    """Rows are true classes, columns predicted ones; colour is the share of the row, text the count."""
    count = len(class_names)
    cell = max(CELL_MIN, min(CELL_MAX, MATRIX_SIDE // max(count, 1)))
    font = _font(max(8, min(13, cell - 2)))
    label_width = min(220, max(_text_width(font, name) for name in class_names) + MARGIN)
    heading, heading_font = f"{title}  (rows: true, columns: predicted)", _font(13)
    top = label_width + 3 * MARGIN + 16
    left = label_width + 2 * MARGIN
    width = max(left + count * cell + MARGIN, _text_width(heading_font, heading) + 2 * MARGIN)
    image = Image.new("RGB", (width, top + count * cell + MARGIN), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, MARGIN), heading, fill=TEXT, font=heading_font)
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    for i, name in enumerate(class_names):
        short = _shorten(name, font, label_width - MARGIN)
        draw.text((MARGIN, top + i * cell + (cell - font.size) // 2), short, fill=TEXT, font=font)
        column_label = Image.new("RGB", (label_width, cell), BACKGROUND)
        ImageDraw.Draw(column_label).text((0, (cell - font.size) // 2), short, fill=TEXT, font=font)
        image.paste(column_label.rotate(90, expand=True), (left + i * cell, top - label_width - MARGIN))
        for j in range(count):
            box = (left + j * cell, top + i * cell, left + (j + 1) * cell - 1, top + (i + 1) * cell - 1)
            draw.rectangle(box, fill=_cell_colour(float(shares[i, j])), outline=(225, 225, 225))
            if cell >= 20 and matrix[i, j]:
                colour = BACKGROUND if shares[i, j] > 0.5 else TEXT
                draw.text(
                    (box[0] + 3, box[1] + (cell - font.size) // 2), str(int(matrix[i, j])), fill=colour, font=font
                )
    return image


def thumbnail(encoded: bytes, side: int) -> Image.Image:
    """The image scaled (up or down) to fit a ``side`` x ``side`` square, centred on white; grey if undecodable."""
    square = Image.new("RGB", (side, side), BACKGROUND)
    try:
        with Image.open(io.BytesIO(encoded)) as source:
            picture = source.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return Image.new("RGB", (side, side), (160, 160, 160))
    picture = ImageOps.contain(picture, (side, side))
    square.paste(picture, ((side - picture.width) // 2, (side - picture.height) // 2))
    return square


def misclassified_grid(mistakes: Sequence[Mistake], title: str, side: int = 128, columns: int = 6) -> Image.Image:
    """Thumbnails of misclassified test images, each captioned with its true and predicted class."""
    font = _font(12)
    caption = 2 * (font.size + 3)
    columns = max(1, min(columns, len(mistakes)))
    rows = math.ceil(len(mistakes) / columns) if mistakes else 0
    width = max(columns * (side + MARGIN) + MARGIN, 360)
    image = Image.new("RGB", (width, 24 + rows * (side + caption + MARGIN) + MARGIN), BACKGROUND)
    draw = ImageDraw.Draw(image)
    heading = title if mistakes else f"{title}: no misclassified test images"
    draw.text((MARGIN, MARGIN // 2), heading, fill=TEXT, font=_font(13))
    for index, mistake in enumerate(mistakes):
        x = MARGIN + (index % columns) * (side + MARGIN)
        y = 24 + (index // columns) * (side + caption + MARGIN)
        image.paste(thumbnail(mistake.image, side), (x, y))
        true_text = _shorten(f"true: {mistake.true_name}", font, side)
        predicted_text = _shorten(f"pred: {mistake.predicted_name} {mistake.probability:.2f}", font, side)
        draw.text((x, y + side + 2), true_text, fill=GOOD, font=font)
        draw.text((x, y + side + font.size + 5), predicted_text, fill=BAD, font=font)
    return image


def sprite(images: Sequence[bytes], side: int) -> Image.Image:
    """The projector's sprite: thumbnails in a square grid, row by row, in the order of the points."""
    columns = max(1, math.ceil(math.sqrt(len(images))))
    sheet = Image.new("RGB", (columns * side, columns * side), BACKGROUND)
    for index, encoded in enumerate(images):
        sheet.paste(thumbnail(encoded, side), ((index % columns) * side, (index // columns) * side))
    return sheet


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
