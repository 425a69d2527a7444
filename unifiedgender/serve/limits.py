"""Limits that keep the server safe with untrusted uploads."""

from __future__ import annotations

from dataclasses import dataclass

from unifiedgender.errors import UserError

MIB = 1024 * 1024
DEFAULT_MAX_UPLOAD_BYTES = 10 * MIB
DEFAULT_MAX_PIXELS = 40_000_000  # 40 MP: larger than any phone photo, small enough to decode safely in parallel
DEFAULT_MAX_FILES = 32


@dataclass(frozen=True)
class ServeLimits:
    """Per-request limits: body size (all files together), pixels per image, files per request."""

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_files: int = DEFAULT_MAX_FILES

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "max_files"):
            if getattr(self, name) < 1:
                raise UserError(f"serve limit {name}={getattr(self, name)} must be at least 1")

    def as_dict(self) -> dict[str, int]:
        """The limits as JSON-friendly values (shown by /health and used by the page)."""
        return {"max_upload_bytes": self.max_upload_bytes, "max_pixels": self.max_pixels, "max_files": self.max_files}
