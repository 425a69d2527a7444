"""LFW (deep-funneled): `<Identity>/<Identity>_NNNN.jpg` plus per-image male_names.txt / female_names.txt."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from unifiedgender.data.importers.base import ImportResult, frame, require_dir
from unifiedgender.data.images import is_image_name
from unifiedgender.errors import UserError

IMAGE_FOLDERS = ("lfw-deepfunneled", "lfw_deepfunneled", "lfw-funneled", "lfw_funneled", "lfw")
LABEL_FOLDERS = ("labels", ".")
# Single-image identities listed in both gender lists; the label audit in the data's SOURCE.txt found them women.
WOMEN_IN_BOTH_LISTS = frozenset(
    {"Allison_Searing", "Claudia_Coslovich", "Elizabeth_Hill", "Erika_Reyes", "Tatiana_Shchegoleva"}
)
COLUMNS = ("path", "subject_id", "gender", "modality", "label_source")


def import_lfw(source: Path) -> ImportResult:
    """One row per face; identity = folder; gender from the lists, conflicts and gaps resolved per identity."""
    require_dir(source, "LFW")
    images_root = _find_images_root(source)
    male, female = (_read_names(_find_label_file(source, f"{g}_names.txt")) for g in ("male", "female"))
    result = ImportResult(frame=frame([], COLUMNS), fmt="lfw", source=source)

    images: list[tuple[str, str]] = []  # (identity, file name)
    with os.scandir(images_root) as entries:
        identities = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    for identity in identities:
        with os.scandir(os.path.join(images_root, identity)) as entries:
            images.extend((identity, e.name) for e in sorted(entries, key=lambda e: e.name) if is_image_name(e.name))
    if not images:
        raise UserError(f"{images_root}: no images in identity folders (expected <Name>/<Name>_0001.jpg)")

    listed = {}  # identity -> Counter of genders from images in exactly one list
    for identity, name in images:
        if (name in male) != (name in female):
            listed.setdefault(identity, Counter())["male" if name in male else "female"] += 1

    rows = []
    for identity, name in images:
        path = os.path.join(images_root, identity, name)
        votes = listed.get(identity, Counter())
        identity_gender = votes.most_common(1)[0][0] if len(votes) == 1 else None
        if (name in male) != (name in female):
            gender, how = ("male" if name in male else "female"), "list"
        elif name in male:  # in both lists
            if identity_gender:
                gender, how = identity_gender, "identity"
                result.count("in both gender lists: took the identity's other images' gender")
            elif identity in WOMEN_IN_BOTH_LISTS:
                gender, how = "female", "audit"
                result.count("in both gender lists: female (audited, see SOURCE.txt)")
            else:
                result.problem("skipped: in both gender lists, identity has no other label", path)
                continue
        else:
            if identity_gender is None:
                result.problem("skipped: in neither gender list, identity has no other label", path)
                continue
            gender, how = identity_gender, "identity"
            result.count("in neither gender list: took the identity's other images' gender")
        rows.append({"path": path, "subject_id": identity, "gender": gender, "modality": "face", "label_source": how})

    mixed = [i for i, votes in listed.items() if len(votes) > 1]
    if mixed:
        result.count("identities whose images have both genders", len(mixed))
        result.warnings.append(f"identities labelled with both genders (kept per image): {', '.join(mixed[:10])}")
    present = {name for _, name in images}
    absent = len((male | female) - present)
    if absent:
        result.count("listed names without an image", absent)
    result.frame = frame(rows, COLUMNS)
    return result


def _find_images_root(source: Path) -> Path:
    for name in IMAGE_FOLDERS:
        if (source / name).is_dir():
            return source / name
    return source


def _find_label_file(source: Path, name: str) -> Path:
    candidates = [source / folder / name for folder in LABEL_FOLDERS] + [source.parent / name]
    for path in candidates:
        if path.is_file():
            return path
    raise UserError(f"{source}: {name} not found (looked in {', '.join(str(c.parent) for c in candidates)}); "
                    "put the LFW gender lists in SOURCE/labels/")


def _read_names(path: Path) -> set[str]:
    """File names, one a line (CRLF or LF); blank lines ignored."""
    with open(path, encoding="utf-8-sig") as handle:
        return {line.strip() for line in handle if line.strip()}
