"""Robust image reading: every supported input becomes an 8-bit RGB (or L) PIL image, or a clear reason why not.

Handles zero-byte, truncated, corrupt and non-image files, CMYK, 16-bit, palette (with transparency),
RGBA/LA, grayscale, EXIF orientation and decompression bombs (pixel-count limit checked before decoding).
"""

from __future__ import annotations

import os
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 64_000_000  # about 8000 x 8000; larger inputs are refused as possible decompression bombs
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")


class ImageReadError(Exception):
    """An image could not be read; the message is a short reason suitable for a status column."""


def is_image_name(path: str | os.PathLike[str]) -> bool:
    """True when the file name has a known image extension (case-insensitive)."""
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def load_image(
    path: str | os.PathLike[str] | BinaryIO, mode: str = "RGB", max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Open, orient and convert one image to `mode` ("RGB" or "L"); raise ImageReadError with the reason.

    `path` may also be a seekable binary file object (e.g. an upload held in memory).
    """
    try:
        size = _byte_size(path)
    except OSError as exc:
        raise ImageReadError(f"cannot open: {exc.strerror or exc}") from exc
    if size == 0:
        raise ImageReadError("empty file (0 bytes)")
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        # The size is read from the header and checked before any pixel is decoded. (No warnings filter here:
        # warnings.catch_warnings is not thread-safe, and images are decoded in parallel threads.)
        with Image.open(path) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise ImageReadError(f"too many pixels ({width}x{height} > {max_pixels:,}); possible decompression bomb")
            img.load()
            img = ImageOps.exif_transpose(img)
            return to_mode(img, mode)
    except ImageReadError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageReadError("not an image (unrecognised format)") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(f"possible decompression bomb: {exc}") from exc
    except OSError as exc:
        raise ImageReadError(f"corrupt or truncated image: {exc}") from exc
    except (ValueError, SyntaxError, EOFError) as exc:
        raise ImageReadError(f"corrupt image: {exc}") from exc


def _byte_size(path: str | os.PathLike[str] | BinaryIO) -> int:
    """Size in bytes of a file path or of a seekable file object (left positioned at its start)."""
    if hasattr(path, "seek"):
        size = path.seek(0, os.SEEK_END)
        path.seek(0)
        return size
    return os.path.getsize(path)


def to_mode(img: Image.Image, mode: str = "RGB") -> Image.Image:
    """Convert any PIL mode to 8-bit RGB or L, scaling 16/32-bit data and compositing alpha on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        peak = float(arr.max()) if arr.size else 0.0
        if img.mode.startswith("I;16") or peak > 255:
            hi = 65535.0
        elif img.mode == "F" and peak <= 1.0:
            hi = 1.0  # floating-point images in [0, 1]
        else:
            hi = 255.0
        img = Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode != mode:
        img = img.convert(mode)  # CMYK, YCbCr, 1, L -> RGB and RGB -> L use PIL's standard conversions
    return img
