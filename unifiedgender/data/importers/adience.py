"""Adience (Eidinger, Enbar & Hassner 2014): the benchmark's five fold files plus the face crops.

Native layout (SOURCE is the folder that holds the fold files; the image folder lies beside them):

- `fold_0_data.txt` ... `fold_4_data.txt`: tab-separated, one header line
  `user_id original_image face_id age gender x y dx dy tilt_ang fiducial_yaw_angle fiducial_score`.
  `age` is a range `(25, 32)`, a number `35`, or `None`; `gender` is `m`, `f`, `u` (unknown) or blank.
- `faces/<user_id>/coarse_tilt_aligned_face.<face_id>.<original_image>` (the in-plane aligned crops), or
  `aligned/<user_id>/landmark_aligned_face.<face_id>.<original_image>` (the landmark-aligned crops).

One manifest row per fold-file row whose image exists and whose gender is m or f: subject = `<user_id>/<face_id>`
(a face id names one person inside one Flickr album), `age` = the mid-point of the range (or the number),
`age_bucket` = the Adience group it falls in (`25-32`; irregular ranges such as `(38, 48)` go to the nearest
group by their mid-point), `age_label` = the file's text, `fold` = 0..4. Rows with gender `u` or blank, and
rows whose image is absent, are counted and listed, never dropped silently; an age of `None` keeps the row
with no age. A missing column or an age that is neither a range, a number nor `None` stops the import.
"""

from __future__ import annotations

import csv
import math
import os
import re
from pathlib import Path

from unifiedgender.data.ages import BUCKET_LABELS, age_to_bucket
from unifiedgender.data.importers.base import ImportResult, frame, require_dir
from unifiedgender.errors import UserError

FOLDS = range(5)
REQUIRED = ("user_id", "original_image", "face_id", "age", "gender")
IMAGE_FOLDERS = {"faces": "coarse_tilt_aligned_face", "aligned": "landmark_aligned_face"}
RANGE = re.compile(r"^\(\s*(\d+(?:\.\d+)?)\s*,\s*(\d+(?:\.\d+)?)\s*\)$")
NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
GENDERS = {"m": "male", "f": "female"}
COLUMNS = ("path", "subject_id", "gender", "modality", "age", "age_bucket", "age_label", "fold", "user_id", "face_id")


def import_adience(source: Path, images: str | None = None) -> ImportResult:
    """One row per labelled face whose crop exists; `images` = `faces` or `aligned` (default: the one present,
    `faces` when both are)."""
    require_dir(source, "Adience (with fold_0_data.txt ... fold_4_data.txt)")
    folds = [(k, source / f"fold_{k}_data.txt") for k in FOLDS if (source / f"fold_{k}_data.txt").is_file()]
    if not folds:
        raise UserError(f"{source}: no fold_0_data.txt ... fold_4_data.txt; SOURCE must hold the Adience fold files")
    image_root, prefix = _image_folder(source, images)
    result = ImportResult(frame=frame([], COLUMNS), fmt="adience", source=source)
    missing = [f"fold_{k}_data.txt" for k in FOLDS if k not in {k for k, _ in folds}]
    if missing:
        result.warnings.append(f"fold file(s) absent: {', '.join(missing)}; the 5-fold protocol needs all five")

    ages: dict[str, tuple[float, str]] = {}  # age text -> (years, bucket label), parsed once per distinct text
    rows = []
    folds_of: dict[str, set[int]] = {}
    for fold, path in folds:
        for line, record in _read_fold(path):
            gender = GENDERS.get(record["gender"].strip().lower())
            if gender is None:
                if record["gender"].strip().lower() not in ("u", ""):
                    raise UserError(f"{path}: line {line}: gender '{record['gender']}' is not m, f or u; fix the row")
                result.problem("skipped: gender u or blank (unknown)", f"{path.name}:{line}")
                continue
            user, face_id, original = (record[c].strip() for c in ("user_id", "face_id", "original_image"))
            image = os.path.join(image_root, user, f"{prefix}.{face_id}.{original}")
            if not os.path.isfile(image):
                result.problem("skipped: image absent", image)
                continue
            text = record["age"].strip()
            if text not in ages:
                ages[text] = _parse_age(text, path, line)
            years, bucket = ages[text]
            if math.isnan(years):
                result.count("kept without age (age None)")
            subject = f"{user}/{face_id}"
            folds_of.setdefault(subject, set()).add(fold)
            rows.append({"path": image, "subject_id": subject, "gender": gender, "modality": "face", "age": years,
                         "age_bucket": bucket, "age_label": text, "fold": fold, "user_id": user, "face_id": face_id})
    if not rows:
        raise UserError(f"{image_root}: none of the faces listed in the fold files exists; unpack the images there")
    crossing = sorted(s for s, f in folds_of.items() if len(f) > 1)
    if crossing:
        result.count("subjects in more than one fold", len(crossing))
        result.warnings.append(f"{len(crossing)} subjects appear in more than one fold (e.g. {', '.join(crossing[:5])}); "
                               "the fold protocol is then not subject-exclusive")
    result.frame = frame(rows, COLUMNS)
    return result


def _image_folder(source: Path, images: str | None) -> tuple[str, str]:
    """(image folder, file-name prefix) for `faces` or `aligned`."""
    if images is not None and images not in IMAGE_FOLDERS:
        raise UserError(f"--images '{images}': Adience has {' or '.join(IMAGE_FOLDERS)}")
    names = [images] if images else [name for name in IMAGE_FOLDERS if (source / name).is_dir()]
    if not names or not (source / names[0]).is_dir():
        wanted = images or " or ".join(IMAGE_FOLDERS)
        raise UserError(f"{source}: no {wanted}/ folder; unpack the Adience images (faces.tar.gz or aligned.tar.gz) into SOURCE")
    return str(source / names[0]), IMAGE_FOLDERS[names[0]]


def _read_fold(path: Path):
    """(line number, row dict) per data line of a fold file; UserError when a column is missing."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = [name.strip() for name in next(reader, [])]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise UserError(f"{path}: missing column '{missing[0]}' (a fold file is tab-separated with the header "
                            f"{' '.join(REQUIRED)} x y dx dy ...); is this an Adience fold file?")
        index = {name: header.index(name) for name in REQUIRED}
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) <= max(index.values()):
                raise UserError(f"{path}: line {number}: {len(cells)} tab-separated fields, the header has {len(header)}; fix the row")
            yield number, {name: cells[i] for name, i in index.items()}


def _parse_age(text: str, path: Path, line: int) -> tuple[float, str]:
    """'(25, 32)' -> (28.5, '25-32'); '35' -> (35.0, '25-32') (the nearest group); 'None' -> (nan, '')."""
    if text == "None":
        return math.nan, ""
    match = RANGE.match(text)
    if match:
        low, high = float(match[1]), float(match[2])
        if low > high:
            raise UserError(f"{path}: line {line}: age range '{text}' runs backwards; fix the row")
        years = (low + high) / 2
    elif NUMBER.match(text):
        years = float(text)
    else:
        raise UserError(f"{path}: line {line}: age '{text}' is neither a range like (25, 32), a number nor None; fix the row")
    return years, BUCKET_LABELS[age_to_bucket(years)]
