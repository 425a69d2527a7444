"""Robust image reading: every supported input becomes an 8-bit RGB (or L) PIL image, or a clear reason why not.

Handles zero-byte, truncated, corrupt and non-image files, CMYK, 16-bit, palette (with transparency),
RGBA/LA, grayscale, EXIF orientation and decompression bombs (pixel-count limit checked before decoding).
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 64_000_000  # about 8000 x 8000; larger inputs are refused as possible decompression bombs
DEFAULT_MAX_DECODED_BYTES = 3 * DEFAULT_MAX_PIXELS  # the largest 8-bit RGB image allowed; 16-bit/RGBA cost more
HEAVY_DECODE_BYTES = 24_000_000  # above this (about 8 MP of 8-bit RGB), decodes in one process run one at a time
_heavy_decodes = threading.BoundedSemaphore(1)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")


class ImageReadError(Exception):
    """An image could not be read; the message is a short reason suitable for a status column."""


class ImageTooLargeError(ImageReadError):
    """An image refused before decoding because it would take too much memory."""


def is_image_name(path: str | os.PathLike[str]) -> bool:
    """True when the file name has a known image extension (case-insensitive)."""
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def decoded_bytes(img: Image.Image) -> int:
    """Bytes the pixels of an opened (not yet loaded) image take at the file's own sample depth:
    width x height x channels x 1, 2 (16-bit) or 4 (32-bit) bytes."""
    rawmode = str(img.tile[0][3]) if img.tile and isinstance(img.tile[0][3], str) else img.mode
    if img.mode in ("I", "F") or ";32" in rawmode:
        depth = 4
    elif img.mode.startswith("I;16") or ";16" in rawmode:
        depth = 2
    else:
        depth = 1
    return img.size[0] * img.size[1] * len(img.getbands()) * depth


def load_image(
    path: str | os.PathLike[str] | BinaryIO,
    mode: str = "RGB",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_DECODED_BYTES,
) -> Image.Image:
    """Open, orient and convert one image to `mode` ("RGB" or "L"); raise ImageReadError with the reason.

    Memory is bounded before decoding: over `max_pixels` is refused; over `max_bytes` of decoded samples
    (see `decoded_bytes`) a JPEG is reduced by 2, 4 or 8 while decoding and any other format is refused; decodes
    over HEAVY_DECODE_BYTES run one at a time per process. `path` may also be a seekable binary file object.
    """
    try:
        if _byte_size(path) == 0:
            raise ImageReadError("empty file (0 bytes)")
        source = path if hasattr(path, "seek") else open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ImageReadError(f"cannot open: {exc.strerror or exc}") from exc
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        # The size is read from the header and checked before any pixel is decoded. (No warnings filter here:
        # warnings.catch_warnings is not thread-safe, and images are decoded in parallel threads.)
        with contextlib.ExitStack() as stack:
            if source is not path:
                stack.callback(source.close)
            img = stack.enter_context(Image.open(source))
            width, height = img.size
            if width * height > max_pixels:
                raise ImageTooLargeError(f"too many pixels ({width}x{height} > {max_pixels:,}); possible decompression bomb")
            need = decoded_bytes(img)
            if need > max_bytes and img.format == "JPEG":
                scale = next((k for k in (2, 4, 8) if need / (k * k) <= max_bytes), 8)
                img.draft(img.mode, (width // scale, height // scale))  # DCT scaling: decoded at 1/scale
                need = need // (scale * scale)
            if need > max_bytes:
                raise ImageTooLargeError(
                    f"too large to decode ({width}x{height}, {need / 1e6:,.0f} MB of pixel data > {max_bytes / 1e6:,.0f} MB); "
                    "save it smaller or at 8 bits per channel"
                )
            with _heavy_decodes if need > HEAVY_DECODE_BYTES else contextlib.nullcontext():
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
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):  # a folder, a FIFO (open would block), a device
        raise OSError(f"not a regular file ({'a folder' if stat.S_ISDIR(info.st_mode) else 'a special file'})")
    return info.st_size


def to_mode(img: Image.Image, mode: str = "RGB") -> Image.Image:
    """Convert any PIL mode to 8-bit RGB or L, scaling 16/32-bit data and compositing alpha on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)  # float32, not float64: half the memory of a large image
        peak = float(arr.max()) if arr.size else 0.0
        if img.mode.startswith("I;16") or peak > 255:
            hi = 65535.0
        elif img.mode == "F" and peak <= 1.0:
            hi = 1.0  # floating-point images in [0, 1]
        else:
            hi = 255.0
        arr *= np.float32(255.0 / hi)
        arr += np.float32(0.5)
        img = Image.fromarray(np.clip(arr, 0, 255, out=arr).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA"):  # composite on white, pasting through the alpha (no RGBA copies)
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img.convert("RGB") if img.mode != "RGBA" else img, mask=img.getchannel("A"))
        img = background
    if img.mode != mode:
        img = img.convert(mode)  # CMYK, YCbCr, 1, L -> RGB and RGB -> L use PIL's standard conversions
    return img
