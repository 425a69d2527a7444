"""UTKFace: `<age>_<gender>_<race>_<timestamp>.jpg[.chip.jpg]`, gender 0 = male / 1 = female, race 0..4."""

from __future__ import annotations

import re
from pathlib import Path

from unifiedgender.data.importers.base import ImportResult, frame, iter_images, require_dir
from unifiedgender.errors import UserError

NAME = re.compile(r"^(?P<age>\d{1,3})_(?P<gender>[01])_(?P<race>[0-4])_(?P<stamp>\d+)\.jpg(?:\.chip\.jpg)?$", re.IGNORECASE)
GENDERS = {"0": "male", "1": "female"}
RACES = {"0": "white", "1": "black", "2": "asian", "3": "indian", "4": "others"}
COLUMNS = ("path", "subject_id", "gender", "modality", "age", "race")


def import_utkface(source: Path) -> ImportResult:
    """One row per face; each image is its own subject (UTKFace has no identities). Malformed names are listed."""
    require_dir(source, "UTKFace")
    result = ImportResult(frame=frame([], COLUMNS), fmt="utkface", source=source)
    rows = []
    for path in iter_images(source):
        match = NAME.match(path.name)
        if match is None:
            result.problem("skipped: malformed name (not <age>_<0|1>_<0-4>_<timestamp>.jpg)", str(path))
            continue
        rows.append({
            "path": str(path),
            "subject_id": "utk_" + path.relative_to(source).as_posix().split(".")[0],
            "gender": GENDERS[match["gender"]],
            "modality": "face",
            "age": int(match["age"]),
            "race": RACES[match["race"]],
        })
    if not rows:
        raise UserError(f"{source}: no UTKFace images found (expected names like 25_1_2_20170116174525125.jpg.chip.jpg)")
    result.warnings.append(
        "UTKFace has no identity labels: each image is its own subject, so one person photographed twice may "
        "land on both sides of a split (byte-identical copies are still tied by dup_group)"
    )
    result.frame = frame(rows, COLUMNS)
    return result
