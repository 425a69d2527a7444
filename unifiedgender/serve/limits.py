"""Limits that keep the server safe with untrusted uploads."""

from __future__ import annotations

from dataclasses import dataclass

from unifiedgender.errors import UserError

MIB = 1024 * 1024
DEFAULT_MAX_UPLOAD_BYTES = 10 * MIB
DEFAULT_MAX_PIXELS = 40_000_000  # 40 MP: larger than any phone photo, small enough to decode safely in parallel
DEFAULT_MAX_FILES = 32
DEFAULT_IDLE_TIMEOUT_S = 15.0  # a request that stops sending for this long is dropped
DEFAULT_REQUEST_TIMEOUT_S = 120.0  # a request must arrive whole within this (10 MB at about 1 Mbit/s)
DEFAULT_MAX_CONNECTIONS = 100  # open connections (and requests in progress); beyond it: 503


@dataclass(frozen=True)
class ServeLimits:
    """Per-request limits (body size of all files together, pixels per image, files per request) and per-server
    limits (seconds a request may idle or take to arrive, open connections)."""

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_files: int = DEFAULT_MAX_FILES
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "max_files", "max_connections"):
            if getattr(self, name) < 1:
                raise UserError(f"serve limit {name}={getattr(self, name)} must be at least 1")
        for name in ("idle_timeout_s", "request_timeout_s"):
            if not getattr(self, name) > 0:
                raise UserError(f"serve limit {name}={getattr(self, name)} must be positive")

    def as_dict(self) -> dict[str, int]:
        """The limits as JSON-friendly values (shown by /health and used by the page)."""
        return {"max_upload_bytes": self.max_upload_bytes, "max_pixels": self.max_pixels, "max_files": self.max_files}
