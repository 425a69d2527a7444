"""Untrusted uploads: bounded multipart reading into memory, type check by content, safe decoding.

Nothing is written to disk: the body is streamed through a byte counter (413 as soon as it passes the limit)
into in-memory buffers, and images are decoded from those buffers.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import BinaryIO

from fastapi import HTTPException, Request
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from unifiedgender.data.images import ImageReadError, ImageTooLargeError, decoded_bytes, load_image
from unifiedgender.serve.limits import MIB, ServeLimits

# Formats accepted, identified from the file's bytes by PIL's own signature checks (never by name or
# client content type). Formats outside this list (EPS, PDF, PSD, ICO, ...) are refused unopened.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "PPM")
MAX_NAME_LENGTH = 200


@dataclass
class Upload:
    """One uploaded file, held in memory."""

    name: str
    file: BinaryIO
    size: int


@dataclass
class Rejection:
    """Why one upload cannot be predicted, with the HTTP status that describes it (413, 415 or 422)."""

    code: int
    reason: str


def _megabytes(n: int) -> str:
    return f"{n / MIB:.2f}".rstrip("0").rstrip(".") + " MB"


def too_large(limits: ServeLimits) -> HTTPException:
    """The 413 error for a request body over the upload limit."""
    return HTTPException(
        413,
        f"upload too large: the limit is {_megabytes(limits.max_upload_bytes)} per request; "
        "send fewer or smaller files",
    )


async def _bounded_stream(request: Request, limit: int, error: HTTPException) -> AsyncIterator[bytes]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise error
        yield chunk


async def read_form(request: Request, limits: ServeLimits) -> tuple[list[Upload], dict[str, str]]:
    """Parse a multipart/form-data body into in-memory uploads and text fields, enforcing the limits."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise HTTPException(
            415, f"expected multipart/form-data with the images in the 'files' field, got '{content_type or 'none'}'"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_upload_bytes:
        raise too_large(limits)  # refused before a single body byte is read
    parser = MultiPartParser(
        request.headers,
        _bounded_stream(request, limits.max_upload_bytes, too_large(limits)),
        max_files=limits.max_files,
        max_fields=16,
        max_part_size=4096,
    )
    parser.spool_max_size = limits.max_upload_bytes + 1  # the body cap bounds memory; never spill to disk
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        if exc.message.startswith("Too many files"):
            raise HTTPException(
                413, f"too many files: at most {limits.max_files} per request; send them in several requests"
            ) from exc
        raise HTTPException(422, f"malformed multipart body: {exc.message}") from exc
    except ClientDisconnect as exc:  # nobody is left to answer; not a server error worth a traceback
        raise HTTPException(400, "client disconnected during the upload") from exc
    uploads, fields = [], {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            uploads.append(Upload(name=_display_name(value.filename), file=value.file, size=value.size or 0))
        else:
            fields[key] = value
    return uploads, fields


def _display_name(filename: str | None) -> str:
    """The client's file name without any directory part, shortened; only ever displayed, never used as a path."""
    name = os.path.basename((filename or "").replace("\\", "/")) or "unnamed"
    return name if len(name) <= MAX_NAME_LENGTH else name[: MAX_NAME_LENGTH - 1] + "…"


def decode_cost(upload: Upload) -> int:
    """Decoded size in bytes that the upload's header claims (0 when unreadable: decode_upload says why)."""
    try:
        with Image.open(upload.file, formats=ALLOWED_FORMATS) as probe:
            return decoded_bytes(probe)
    except Exception:  # noqa: BLE001 - any header problem is reported by decode_upload
        return 0
    finally:
        upload.file.seek(0)


def decode_upload(upload: Upload, max_pixels: int) -> Image.Image | Rejection:
    """Check the type by content, then the pixel count, then decode to RGB; a Rejection says why not."""
    if upload.size == 0:
        return Rejection(422, "empty file (0 bytes)")
    try:  # reads the header only (no warnings filter: catch_warnings is not thread-safe)
        with Image.open(upload.file, formats=ALLOWED_FORMATS) as probe:
            width, height = probe.size
    except UnidentifiedImageError:
        return Rejection(415, f"unsupported file type: not a {', '.join(ALLOWED_FORMATS)} image (checked by content)")
    except Image.DecompressionBombError as exc:
        return Rejection(413, f"too many pixels: possible decompression bomb ({exc})")
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        return Rejection(422, f"corrupt image header: {exc}")
    if width * height > max_pixels:
        return Rejection(
            413, f"too many pixels ({width}x{height} > {max_pixels:,}); possible decompression bomb"
        )
    try:
        return load_image(upload.file, mode="RGB", max_pixels=max_pixels)
    except ImageTooLargeError as exc:
        return Rejection(413, str(exc))
    except ImageReadError as exc:
        return Rejection(422, str(exc))
