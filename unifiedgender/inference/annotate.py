"""Visual output: image copies with the label and confidence drawn on, and a contact sheet of a folder."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from unifiedgender.data.images import ImageReadError, load_image
from unifiedgender.errors import UserError
from unifiedgender.fileio import atomic_path

COLOURS = {"male": (33, 102, 172), "female": (178, 24, 43), "": (110, 110, 110)}
THUMB = 160
CAPTION = 34
LEGEND = 24  # the contact sheet's key: what the colours and the percentage mean
MAX_SHEET_IMAGES = 400


def caption(record: dict[str, Any]) -> str:
    """'male 93%' for a prediction; 'failed: reason' otherwise."""
    if record["status"] != "ok":
        return f"failed: {record['status']}"
    return f"{record['pred']} {record['confidence'] * 100:.0f}%"


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def fit_text(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> str:
    """`text` shortened with an ellipsis in the middle (a file name keeps its last characters) to fit `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    tail = text[len(text) - min(8, len(text) // 3):]
    head = text[: len(text) - len(tail)]
    while head and draw.textlength(f"{head}…{tail}", font=font) > width:
        head = head[:-1]
    return f"{head}…{tail}"


def draw_label(image: Image.Image, record: dict[str, Any]) -> Image.Image:
    """A copy of `image` with a coloured banner (label, confidence) and a confidence bar at the bottom."""
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    size = max(12, out.height // 14)
    font = _font(size)
    banner = size + 8
    colour = COLOURS.get(record.get("pred") or "", COLOURS[""])
    draw.rectangle([0, out.height - banner, out.width, out.height], fill=(0, 0, 0))
    if record["status"] == "ok":
        draw.rectangle([0, out.height - 4, int(out.width * record["confidence"]), out.height], fill=colour)
    draw.text((4, out.height - banner + 2), caption(record), fill=(255, 255, 255), font=font)
    return out


def draw_faces(image: Image.Image, records: list[dict[str, Any]]) -> Image.Image:
    """A copy of a photo with each detected face's box and 'N: label confidence%' in the label's colour
    (records of `ugn predict --detect face`; those without a face are skipped)."""
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    width = max(2, round(min(out.size) / 150))
    font = _font(max(12, min(out.size) // 20))
    for record in records:
        if record.get("face") is None:
            continue
        colour = COLOURS.get(record.get("pred") or "", COLOURS[""])
        x0, y0, x1, y1 = record["x0"], record["y0"], record["x1"] - 1, record["y1"] - 1
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=width)
        text = f"{record['face']}: {caption(record)}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        height = bottom - top + 4
        y = y0 - height if y0 - height >= 0 else min(y1 + 1, out.height - height)
        draw.rectangle((x0, y, x0 + right - left + 4, y + height), fill=colour)
        draw.text((x0 + 2, y + 2 - top), text, fill=(255, 255, 255), font=font)
    return out


class Annotator:
    """Writes an annotated copy of every readable image into `folder` (names kept; clashes numbered)."""

    def __init__(self, folder: str | os.PathLike[str], overwrite: bool = False) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise UserError(f"--annotate {self.folder}: exists and is not a folder; choose a folder path")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.overwrite = overwrite
        self.used: set[str] = set()
        self.written = 0

    def add(self, record: dict[str, Any]) -> Path | None:
        """Annotate one record's image; returns the written path (None for failed images)."""
        if record["status"] != "ok":
            return None
        return self._write(record["path"], lambda image: draw_label(image, record))

    def add_faces(self, records: list[dict[str, Any]]) -> Path | None:
        """Annotate one photo with the boxes and labels of its face records (None when it has no face)."""
        if not any(r["status"] == "ok" for r in records):
            return None
        return self._write(records[0]["path"], lambda image: draw_faces(image, records))

    def _write(self, path: str, draw: Callable[[Image.Image], Image.Image]) -> Path | None:
        try:
            image = load_image(path)
        except ImageReadError:
            return None
        target = self.folder / self._name(path)
        suffix = ".jpg" if target.suffix.lower() in (".jpg", ".jpeg") else ".png"
        target = target.with_suffix(suffix)
        with atomic_path(target, overwrite=self.overwrite) as tmp:
            draw(image).save(tmp, format="JPEG" if suffix == ".jpg" else "PNG", quality=92)
        self.written += 1
        return target

    def _name(self, path: str) -> str:
        stem, ext = os.path.splitext(os.path.basename(path))
        name, n = f"{stem}{ext}", 1
        while name.lower() in self.used:
            n += 1
            name = f"{stem}_{n}{ext}"
        self.used.add(name.lower())
        return name


class ContactSheet:
    """A grid of thumbnails with captions, built incrementally (at most `max_images` tiles kept)."""

    def __init__(self, path: str | os.PathLike[str], overwrite: bool = False, max_images: int = MAX_SHEET_IMAGES) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() != ".png":
            raise UserError(f"--contact-sheet {self.path}: use a file name ending in .png")
        if self.path.exists() and not overwrite:
            raise UserError(f"{self.path} already exists; pass --overwrite or choose another file")
        self.overwrite = overwrite
        self.max_images = max_images
        self.tiles: list[Image.Image] = []
        self.total = 0

    def add(self, record: dict[str, Any]) -> None:
        self.total += 1
        if len(self.tiles) >= self.max_images:
            return
        tile = Image.new("RGB", (THUMB, THUMB + CAPTION), (245, 245, 245))
        try:
            thumb = load_image(record["path"]) if record["status"] == "ok" else None
        except ImageReadError:
            thumb = None
        if thumb is not None:
            thumb.thumbnail((THUMB, THUMB))
            tile.paste(thumb, ((THUMB - thumb.width) // 2, (THUMB - thumb.height) // 2))
        draw = ImageDraw.Draw(tile)
        colour = COLOURS.get(record.get("pred") or "", COLOURS[""])
        draw.rectangle([0, THUMB, THUMB, THUMB + CAPTION], fill=colour)
        for y, text, size in ((THUMB + 2, caption(record), 12), (THUMB + 17, os.path.basename(record["path"]), 11)):
            draw.text((4, y), fit_text(draw, text, _font(size), THUMB - 8), fill=(255, 255, 255), font=_font(size))
        self.tiles.append(tile)

    def save(self) -> Path | None:
        """Write the sheet (None when there was nothing to show)."""
        if not self.tiles:
            return None
        columns = min(len(self.tiles), max(1, math.ceil(math.sqrt(len(self.tiles)))))
        rows = math.ceil(len(self.tiles) / columns)
        footer = 20 if self.total > len(self.tiles) else 0
        sheet = Image.new("RGB", (max(columns * THUMB, 2 * THUMB), LEGEND + rows * (THUMB + CAPTION) + footer), (255, 255, 255))
        _draw_legend(ImageDraw.Draw(sheet))
        for index, tile in enumerate(self.tiles):
            sheet.paste(tile, ((index % columns) * THUMB, LEGEND + (index // columns) * (THUMB + CAPTION)))
        if footer:
            ImageDraw.Draw(sheet).text(
                (4, sheet.height - footer + 3), f"first {len(self.tiles)} of {self.total} images", fill=(0, 0, 0), font=_font(12)
            )
        with atomic_path(self.path, overwrite=self.overwrite) as tmp:
            sheet.save(tmp, format="PNG")
        return self.path


def _draw_legend(draw: ImageDraw.ImageDraw) -> None:
    """Colour swatches for male, female and failed, and what the percentage is."""
    x, font = 4, _font(12)
    for name, colour in (("male", COLOURS["male"]), ("female", COLOURS["female"]), ("failed", COLOURS[""])):
        draw.rectangle([x, 6, x + 12, 18], fill=colour)
        draw.text((x + 16, 5), name, fill=(0, 0, 0), font=font)
        x += 22 + int(draw.textlength(name, font=font)) + 8
    draw.text((x, 5), "% = confidence of the label", fill=(0, 0, 0), font=font)
