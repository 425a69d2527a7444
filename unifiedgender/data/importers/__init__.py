"""Importers of native dataset formats into the canonical manifest: a registry and one entry point."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from unifiedgender.data.dedup import DuplicateReport, assign_dup_groups
from unifiedgender.data.importers.adience import import_adience
from unifiedgender.data.importers.base import ImportResult
from unifiedgender.data.importers.celeba import import_celeba
from unifiedgender.data.importers.hagrid import import_hagrid_derived
from unifiedgender.data.importers.hands11k import import_11k_hands
from unifiedgender.data.importers.imagefolder import import_imagefolder
from unifiedgender.data.importers.lfw import import_lfw
from unifiedgender.data.importers.socofing import import_socofing
from unifiedgender.data.importers.utkface import import_utkface
from unifiedgender.data.manifest import canonical_path
from unifiedgender.errors import UserError

IMPORTERS: dict[str, Callable[..., ImportResult]] = {
    "hagrid-derived": import_hagrid_derived,
    "imagefolder": import_imagefolder,
    "socofing": import_socofing,
    "utkface": import_utkface,
    "lfw": import_lfw,
    "11k-hands": import_11k_hands,
    "adience": import_adience,
    "celeba": import_celeba,
}


def import_dataset(fmt: str, source: str | os.PathLike[str], **options: object) -> tuple[ImportResult, DuplicateReport]:
    """Run the importer for `fmt` on `source`, then tie byte-identical images together in `dup_group`.

    Options that are None are ignored; an option the format does not take is refused with its name.
    """
    if fmt not in IMPORTERS:
        raise UserError(f"unknown format '{fmt}'; use one of {', '.join(IMPORTERS)}")
    importer = IMPORTERS[fmt]
    accepted = set(inspect.signature(importer).parameters) - {"source"}
    given = {k: v for k, v in options.items() if v is not None}
    for name in given:
        if name not in accepted:
            raise UserError(f"--{name.replace('_', '-')} does not apply to format '{fmt}'")
    source = Path(source).expanduser().resolve()
    if not source.exists():
        raise UserError(f"{source}: not found; pass the dataset folder as SOURCE")
    result = importer(source, **given)
    result.frame = _drop_repeated_files(result)
    if result.frame.empty:
        reasons = "; ".join(f"{key}: {count}" for key, count in result.counts.items()) or "no images found"
        raise UserError(f"{source}: no image could be imported as '{fmt}' ({reasons}); check SOURCE and its label files")
    result.frame, duplicates = assign_dup_groups(result.frame)
    return result, duplicates


def _drop_repeated_files(result: ImportResult) -> pd.DataFrame:
    """One row per file (compared by canonical path): a repeat with the same subject and gender is dropped;
    a file found under two subjects or genders is dropped altogether (it cannot be labelled)."""
    df = result.frame
    keys = [canonical_path(p) for p in df["path"]]
    repeated = pd.Series(keys, index=df.index).duplicated(keep=False)
    if not repeated.any():
        return df
    keep = ~repeated
    for _, rows in df[repeated].groupby([k for k, r in zip(keys, repeated) if r], sort=False):
        if rows["subject_id"].astype(str).nunique() == 1 and rows["gender"].nunique() == 1:
            keep[rows.index[0]] = True
            for path in rows["path"].iloc[1:]:
                result.problem("skipped: the same file again (symlink or repeated entry)", str(path))
        else:
            for path in rows["path"]:
                result.problem("skipped: the same file under two subjects or genders", str(path))
    return df[keep].reset_index(drop=True)


__all__ = ["IMPORTERS", "ImportResult", "import_dataset"]
