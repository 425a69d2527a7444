"""11K Hands: HandInfo.csv (id, age, gender, skinColor, accessories, nailPolish, aspectOfHand, imageName,
irregularities) plus a folder of the images; rows whose image is absent are skipped and counted."""

from __future__ import annotations

import os
from pathlib import Path

from unifiedgender.data.importers.base import ImportResult, frame, normalize_gender, read_csv_columns, require_dir
from unifiedgender.data.images import is_image_name
from unifiedgender.errors import UserError

REQUIRED = ("id", "age", "gender", "skinColor", "aspectOfHand", "imageName")
EXTRA = {"accessories": "accessories", "nailPolish": "nail_polish", "irregularities": "irregularities"}
COLUMNS = ("path", "subject_id", "gender", "modality", "age", "skin", "aspect", "hand", *EXTRA.values())


def import_11k_hands(source: Path) -> ImportResult:
    """One row per listed image that exists; `aspectOfHand` becomes `aspect` (dorsal/palmar) and `hand`."""
    require_dir(source, "11K Hands (with HandInfo.csv)")
    info_path = source / "HandInfo.csv"
    if not info_path.is_file():
        raise UserError(f"{source}: HandInfo.csv not found; SOURCE must hold HandInfo.csv and the image folder")
    info = read_csv_columns(info_path, REQUIRED, dtype={"id": str, "imageName": str})
    images_root, present = _find_image_folder(source, set(info["imageName"].astype(str)))
    result = ImportResult(frame=frame([], COLUMNS), fmt="11k-hands", source=source)

    rows = []
    for index, record in enumerate(info.to_dict("records")):
        line = index + 2
        name = str(record["imageName"])
        if name not in present:
            result.count("skipped: listed in HandInfo.csv, image absent")
            continue
        gender = normalize_gender(record["gender"])
        if gender is None:
            raise UserError(f"{info_path}: row {line}: unknown gender '{record['gender']}'; use male or female")
        aspect, _, hand = str(record["aspectOfHand"]).strip().lower().partition(" ")
        if aspect not in ("dorsal", "palmar") or hand not in ("left", "right"):
            raise UserError(f"{info_path}: row {line}: aspectOfHand '{record['aspectOfHand']}' is not "
                            "'<dorsal|palmar> <left|right>'; fix the row")
        try:
            age = int(record["age"])
        except (TypeError, ValueError):
            raise UserError(f"{info_path}: row {line}: age '{record['age']}' is not a whole number; fix the row") from None
        row = {"path": str(images_root / name), "subject_id": str(record["id"]), "gender": gender, "modality": "hand",
               "age": age, "skin": str(record["skinColor"]).strip().lower(), "aspect": aspect, "hand": hand}
        row.update({new: record.get(old) for old, new in EXTRA.items()})
        rows.append(row)  # a name listed twice stays twice: import_dataset keeps one or drops a conflict
    unlisted = present - set(info["imageName"].astype(str))
    if unlisted:
        result.count("skipped: image not listed in HandInfo.csv", len(unlisted))
        result.problems["skipped: image not listed in HandInfo.csv"] = sorted(unlisted)[:20]
    if not rows:
        raise UserError(f"{images_root}: none of the images listed in {info_path} is present; check SOURCE")
    result.frame = frame(rows, COLUMNS)
    return result


def _find_image_folder(source: Path, listed: set[str]) -> tuple[Path, set[str]]:
    """SOURCE or the sub-folder holding the most images named in HandInfo.csv (e.g. Hands/ or lessDataset_bregy/)."""
    best: tuple[int, Path, set[str]] = (-1, source, set())
    for folder in [source, *sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))]:
        with os.scandir(folder) as entries:
            names = {e.name for e in entries if e.is_file() and is_image_name(e.name)}
        hits = len(names & listed)
        if hits > best[0]:
            best = (hits, folder, names)
    return best[1], best[2]
