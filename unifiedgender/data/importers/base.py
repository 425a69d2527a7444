"""What every importer shares: the result type, image listing and label normalisation."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from unifiedgender.data.images import is_image_name
from unifiedgender.errors import UserError

GENDER_WORDS = {"male": "male", "m": "male", "man": "male", "female": "female", "f": "female", "woman": "female"}
MAX_LISTED = 20  # problem file names listed in a report; the count is always complete


@dataclass
class ImportResult:
    """A manifest frame plus what the importer counted, skipped and wants the user to know."""

    frame: pd.DataFrame
    fmt: str
    source: Path
    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def problem(self, key: str, name: str) -> None:
        """Count one skipped input under `key` and remember its name (the first MAX_LISTED)."""
        self.count(key)
        names = self.problems.setdefault(key, [])
        if len(names) < MAX_LISTED:
            names.append(name)


def iter_images(root: Path) -> Iterator[Path]:
    """Every image file below `root` (recursively, hidden entries skipped), in sorted order."""
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            entries = sorted(entries, key=lambda e: e.name)
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(Path(entry.path))
            elif entry.is_file() and is_image_name(entry.name):
                yield Path(entry.path)
        stack.extend(reversed(subdirs))


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise UserError(f"{path}: not a folder; pass the {what} folder as SOURCE")
    return path


def normalize_gender(value: object) -> str | None:
    """'Male', 'M', 'female', ... -> 'male'/'female'; None when unrecognised."""
    return GENDER_WORDS.get(str(value).strip().lower())


def frame(rows: Iterable[dict], columns: Iterable[str]) -> pd.DataFrame:
    """A manifest frame from row dicts, with the given column order even when there are no rows."""
    return pd.DataFrame(list(rows), columns=list(columns))


def read_csv_columns(path: Path, required: Iterable[str], dtype: dict | None = None) -> pd.DataFrame:
    """Read a metadata CSV and check its columns; UserError naming the file and the missing column."""
    try:
        df = pd.read_csv(path, dtype=dtype)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable CSV ({exc}); check the file") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise UserError(f"{path}: missing column '{missing[0]}' (needs {', '.join(required)}); is this the right file?")
    return df
