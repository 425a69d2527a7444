"""Atomic file writes: a result is either complete under its final name or absent."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from unifiedgender.errors import UserError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    final = Path(path)
    if not overwrite and final.exists():
        raise UserError(f"{final} already exists; pass --overwrite or choose another output path")
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w", overwrite: bool = True, **kwargs) -> Iterator[IO]:
    """Open a temporary file for writing that replaces `path` atomically on success."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
