"""SOCOFing fingerprints: `<subject>__<M|F>_<Left|Right>_<finger>_finger[_<alteration>].<BMP|png>`."""

from __future__ import annotations

import re
from pathlib import Path

from unifiedgender.data.importers.base import ImportResult, frame, iter_images, require_dir
from unifiedgender.errors import UserError

NAME = re.compile(
    r"^(?P<subject>\d+)__(?P<sex>[MF])_(?P<hand>Left|Right)_(?P<finger>thumb|index|middle|ring|little)_finger"
    r"(?:_(?P<alteration>CR|Obl|Zcut))?\.(?:bmp|png)$",
    re.IGNORECASE,
)
COLUMNS = ("path", "subject_id", "gender", "modality", "hand", "finger", "alteration")


def import_socofing(source: Path) -> ImportResult:
    """One row per fingerprint image below `source`; names that do not follow the pattern are listed and skipped."""
    require_dir(source, "SOCOFing (e.g. SOCOFing/Real)")
    result = ImportResult(frame=frame([], COLUMNS), fmt="socofing", source=source)
    rows = []
    for path in iter_images(source):
        match = NAME.match(path.name)
        if match is None:
            result.problem("skipped: file name not <subject>__<M|F>_<Left|Right>_<finger>_finger", str(path))
            continue
        rows.append({
            "path": str(path),
            "subject_id": match["subject"],
            "gender": "male" if match["sex"].upper() == "M" else "female",
            "modality": "fingerprint",
            "hand": match["hand"].lower(),
            "finger": match["finger"].lower(),
            "alteration": (match["alteration"] or "real").lower(),
        })
    if not rows:
        raise UserError(f"{source}: no SOCOFing images found (expected names like 1__M_Left_index_finger.BMP)")
    result.frame = frame(rows, COLUMNS)
    return result
