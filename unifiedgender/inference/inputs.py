"""Turn the inputs of `ugn predict` (files, folders, globs, manifests) into an ordered list of images.

Folders contribute files with an image extension (sorted; below sub-folders with `recursive`); a file named
explicitly is always predicted, whatever its name, so a non-image gets a status instead of being skipped;
a `.csv` is a manifest (or any CSV with a `path` column and optionally `modality`), whose missing files
become failed rows rather than an error.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from unifiedgender.data.images import IMAGE_EXTENSIONS, is_image_name
from unifiedgender.data.manifest import MODALITIES
from unifiedgender.errors import UserError

GLOB_CHARS = ("*", "?", "[")


@dataclass(frozen=True)
class InputImage:
    """One image to predict and its modality (None: not given)."""

    path: str
    modality: str | None = None


def collect_inputs(inputs: Sequence[str], recursive: bool = False, modality: str | None = None) -> list[InputImage]:
    """All images named by `inputs`, in order, without duplicates; `modality` fills in where none is given."""
    if not inputs:
        raise UserError("no input given; pass image files, folders, globs or a manifest .csv")
    seen: set[str] = set()
    images: list[InputImage] = []
    for item in _expand(inputs, recursive):
        key = os.path.abspath(item.path)
        if key in seen:
            continue
        seen.add(key)
        images.append(InputImage(item.path, item.modality or modality))
    if not images:
        hint = "" if recursive else "; pass --recursive to walk sub-folders"
        raise UserError(f"no image files in {', '.join(inputs)} (looked for {', '.join(IMAGE_EXTENSIONS)}){hint}")
    return images


def _expand(inputs: Sequence[str], recursive: bool) -> Iterator[InputImage]:
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            yield from (InputImage(p) for p in iter_folder(path, recursive))
        elif path.is_file() and path.suffix.lower() == ".csv":
            yield from read_path_list(path)
        elif path.exists() or path.is_symlink():
            yield InputImage(str(path))  # a broken link or a FIFO gets a status row, like an unreadable file
        elif any(ch in raw for ch in GLOB_CHARS):
            matches = sorted(glob.glob(raw, recursive=recursive))
            files = [m for m in matches if os.path.isfile(m)]
            if not files:
                raise UserError(f"pattern '{raw}' matches no file; check the pattern (quote it to keep the shell off)")
            yield from (InputImage(m) for m in files)
        else:
            raise UserError(f"no such file or folder: {raw}; check the path")


def iter_folder(folder: Path, recursive: bool) -> Iterator[str]:
    """Image files in `folder` (sorted by name; sub-folders walked depth-first when recursive)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise UserError(f"cannot read folder {folder}: {exc.strerror or exc}") from exc
    for entry in entries:
        if recursive and entry.is_dir(follow_symlinks=False):
            yield from iter_folder(Path(entry.path), recursive)
        elif is_image_name(entry.name) and not _is_folder(entry):
            yield entry.path  # broken links, FIFOs, ... too: each gets a row with its reason


def _is_folder(entry: os.DirEntry) -> bool:
    """A folder or a working link to one; False for anything else, including a link that cannot be followed."""
    try:
        return entry.is_dir()
    except OSError:  # ELOOP and the like while following a link
        return False


def read_path_list(csv_path: Path) -> Iterator[InputImage]:
    """Rows of a manifest or any CSV with a `path` column (relative paths are below the CSV's folder)."""
    import pandas as pd

    try:
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"{csv_path}: not a readable CSV ({exc}); check the file") from exc
    if "path" not in frame.columns:
        raise UserError(f"{csv_path}: no 'path' column; a manifest (or a CSV of paths) needs one")
    root = csv_path.resolve().parent
    modalities = frame["modality"] if "modality" in frame.columns else [""] * len(frame)
    for row, (path, modality) in enumerate(zip(frame["path"], modalities)):
        modality = modality.strip()
        if modality and modality not in MODALITIES:
            raise UserError(
                f"{csv_path}: row {row + 2}: unknown modality '{modality}'; use one of {', '.join(MODALITIES)}"
            )
        if not path.strip():
            raise UserError(f"{csv_path}: row {row + 2}: empty 'path'; fill it in or drop the row")
        yield InputImage(path if os.path.isabs(path) else str(root / path), modality or None)
