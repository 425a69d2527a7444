"""The canonical manifest: one CSV row per image.

Required columns: path, subject_id, gender (male/female), modality.
Optional, known columns: age, race, skin, split, dup_group. Any other column is kept as is.
Paths are stored relative to the manifest's folder when they lie below it, and are returned absolute.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from unifiedgender.errors import UserError
from unifiedgender.fileio import atomic_write

REQUIRED_COLUMNS = ("path", "subject_id", "gender", "modality")
OPTIONAL_COLUMNS = ("age", "race", "skin", "split", "dup_group")
GENDERS = ("female", "male")  # label 1 = male: every probability in the project is prob_male
MODALITIES = ("hand", "face", "fingerprint", "fluting_virtual", "fluting_tactile")
DEMOGRAPHIC_COLUMNS = ("age", "race", "skin")


def gender_to_label(gender: pd.Series) -> pd.Series:
    """male -> 1, female -> 0."""
    return (gender == "male").astype("int64")


def validate_manifest(df: pd.DataFrame, source: str = "manifest", check_files: bool = True) -> pd.DataFrame:
    """Check a manifest frame; raise UserError naming the first problem (column, row or file) and its fix."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(
            f"{source}: missing column '{missing[0]}' (required: {', '.join(REQUIRED_COLUMNS)}); "
            "create it with `ugn data import`"
        )
    for column in REQUIRED_COLUMNS:
        empty = df[column].isna() | (df[column].astype(str).str.strip() == "")
        if empty.any():
            row = int(empty.idxmax())
            raise UserError(f"{source}: row {row + 2}: empty '{column}'; fill it in or drop the row")
    for column, allowed in (("gender", GENDERS), ("modality", MODALITIES)):
        bad = ~df[column].isin(allowed)
        if bad.any():
            row = int(bad.idxmax())
            raise UserError(
                f"{source}: row {row + 2}: unknown {column} '{df.at[row, column]}'; "
                f"use one of {', '.join(allowed)}"
            )
    check_unique_files(df["path"], source)
    if check_files:
        for row, path in enumerate(df["path"]):
            if not os.path.isfile(path):
                raise UserError(
                    f"{source}: row {row + 2}: file not found '{path}'; fix the path or remove the row"
                )
    return df


def canonical_path(path: str | os.PathLike[str]) -> str:
    """The file's resolved real path (symlinks, `.`/`..` and repeated slashes removed): the key of every
    same-file check, so that two spellings of one file are never taken for two images."""
    return os.path.realpath(path)


def check_unique_files(paths: pd.Series, source: str = "manifest") -> None:
    """UserError naming both rows when two paths are the same file (compared by `canonical_path`)."""
    first: dict[str, int] = {}
    for position, path in enumerate(paths):
        if pd.isna(path):
            continue
        key = canonical_path(str(path))
        if key in first:
            earlier = first[key]
            what = (f"duplicate path '{path}' (also row {earlier + 2})" if str(paths.iloc[earlier]) == str(path)
                    else f"'{path}' is the same file as row {earlier + 2} ('{paths.iloc[earlier]}')")
            raise UserError(f"{source}: row {position + 2}: {what}; each image must appear once, remove one row")
        first[key] = position


def read_manifest(path: str | os.PathLike[str], check_files: bool = True) -> pd.DataFrame:
    """Read and validate a manifest; paths come back absolute. Blank optional cells become NaN."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"manifest not found: {path}; create one with `ugn data import FORMAT SOURCE -o {path}`")
    try:
        df = pd.read_csv(path, dtype={"subject_id": str, "path": str, "dup_group": str}, keep_default_na=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"{path}: not a readable CSV ({exc}); check the file") from exc
    df = df.reset_index(drop=True)
    if "path" in df.columns:
        root = path.resolve().parent
        df["path"] = [str(p) if pd.isna(p) or os.path.isabs(p) else str(root / p) for p in df["path"]]
    df.attrs["source"] = str(path)
    return validate_manifest(df, source=str(path), check_files=check_files)


def write_manifest(df: pd.DataFrame, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Validate (without touching files) and write atomically; paths below the manifest's folder become relative."""
    path = Path(path)
    validate_manifest(df, source=str(path), check_files=False)
    root = os.path.dirname(os.path.abspath(path))
    out = df.copy()
    out["path"] = [_relative_if_below(p, root) for p in out["path"]]
    ordered = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in out.columns]
    out = out[ordered + [c for c in out.columns if c not in ordered]]
    with atomic_write(path, overwrite=overwrite, newline="") as handle:
        out.to_csv(handle, index=False)
    return path


def _relative_if_below(p: str, root: str) -> str:
    """A POSIX path relative to `root` when `p` lies below it, else `p` made absolute (lexically, no file-system calls)."""
    absolute = os.path.abspath(p)
    if absolute.startswith(root.rstrip(os.sep) + os.sep):
        return Path(os.path.relpath(absolute, root)).as_posix()
    return absolute
