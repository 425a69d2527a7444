"""Stream prediction records to CSV, JSON or JSON Lines, atomically (complete under the final name or absent)."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from unifiedgender.errors import UserError
from unifiedgender.fileio import atomic_write

FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl"}


def output_format(path: str | os.PathLike[str]) -> str:
    """csv, json or jsonl from the file suffix; anything else is a UserError."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UserError(f"output {path}: unknown format; use a name ending in {', '.join(FORMATS)}")
    return fmt


class RecordWriter:
    """Writes dict records one at a time with a fixed column order."""

    def __init__(self, handle: IO[str], fmt: str, fields: Sequence[str]) -> None:
        self.handle, self.fmt, self.fields, self.count = handle, fmt, list(fields), 0
        if fmt == "csv":
            self._csv = csv.DictWriter(handle, fieldnames=self.fields, extrasaction="ignore", lineterminator="\n")
            self._csv.writeheader()
        elif fmt == "json":
            handle.write("[")

    def write(self, record: dict[str, Any]) -> None:
        row = {field: _clean(record.get(field)) for field in self.fields}
        if self.fmt == "csv":
            self._csv.writerow({k: "" if v is None else v for k, v in row.items()})
        elif self.fmt == "json":
            self.handle.write(("," if self.count else "") + "\n  " + json.dumps(row))
        else:
            self.handle.write(json.dumps(row) + "\n")
        self.count += 1

    def close(self) -> None:
        if self.fmt == "json":
            self.handle.write("\n]\n" if self.count else "]\n")


@contextlib.contextmanager
def open_records(path: str | os.PathLike[str], fields: Sequence[str], overwrite: bool = False) -> Iterator[RecordWriter]:
    """A RecordWriter onto a temporary file that replaces `path` only when the block completes."""
    fmt = output_format(path)
    with atomic_write(path, overwrite=overwrite, newline="", encoding="utf-8") as handle:
        writer = RecordWriter(handle, fmt, fields)
        yield writer
        writer.close()


def _clean(value: Any) -> Any:
    """Floats rounded to 6 decimals; NaN becomes None (JSON null, empty CSV cell)."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    return value
