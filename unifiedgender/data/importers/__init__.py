"""Importers of native dataset formats into the canonical manifest: a registry and one entry point."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path

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
    result.frame, duplicates = assign_dup_groups(result.frame)
    return result, duplicates


__all__ = ["IMPORTERS", "ImportResult", "import_dataset"]
