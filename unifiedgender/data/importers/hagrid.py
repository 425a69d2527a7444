"""The UnifiedGenderNet release (derived from HaGRID): train/val/test.csv + aligned hand and face crops.

CSV columns: id, user_id, age, gender, race, labels, hand_image_name, face_image_name. Images live in
images/content/aligned_dataset/{hands,faces}/ (the published zip may add one more content/ level).
Each CSV row becomes a hand row and a face row of the same subject; the published split is kept in `split`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from unifiedgender.data.importers.base import ImportResult, frame, normalize_gender, read_csv_columns, require_dir
from unifiedgender.errors import UserError

RELEASE_FOLDER = "Shared_Derived_HaGRID_unified_Model_For_Sex_Prediction"
SPLITS = ("train", "val", "test")
REQUIRED = ("user_id", "gender", "hand_image_name", "face_image_name")
IMAGE_ROOTS = (
    "images/content/aligned_dataset",
    "images/content/content/aligned_dataset",
    "images/aligned_dataset",
    "content/aligned_dataset",
    "content/content/aligned_dataset",
    "aligned_dataset",
)
COLUMNS = ("path", "subject_id", "gender", "modality", "age", "race", "split", "sample_id", "gesture")


def import_hagrid_derived(source: Path) -> ImportResult:
    """Two rows (hand, face) per CSV row whose images exist; absent images are skipped and counted."""
    require_dir(source, "UnifiedGenderNet release")
    if (source / RELEASE_FOLDER).is_dir():
        source = source / RELEASE_FOLDER
    csvs = [(split, source / f"{split}.csv") for split in SPLITS if (source / f"{split}.csv").is_file()]
    if not csvs:
        raise UserError(f"{source}: no train.csv/val.csv/test.csv; download them with `ugn download dataset`")
    image_root = _find_image_root(source)
    result = ImportResult(frame=frame([], COLUMNS), fmt="hagrid-derived", source=source)

    rows = []
    published: dict[str, set[str]] = {}
    for split, csv_path in csvs:
        table = read_csv_columns(csv_path, REQUIRED, dtype={"user_id": str, "id": str})
        for index, record in enumerate(table.to_dict("records")):
            gender = normalize_gender(record["gender"])
            if gender is None:
                raise UserError(f"{csv_path}: row {index + 2}: unknown gender '{record['gender']}'; use Male or Female")
            subject = str(record["user_id"]).strip()
            published.setdefault(subject, set()).add(split)
            common = {"subject_id": subject, "gender": gender, "age": _cell(record, "age"), "race": _cell(record, "race"),
                      "split": split, "sample_id": _cell(record, "id"), "gesture": _cell(record, "labels")}
            for modality, folder, column in (("hand", "hands", "hand_image_name"), ("face", "faces", "face_image_name")):
                path = image_root / folder / str(record[column]).strip()
                if not path.is_file():
                    result.problem(f"skipped: {modality} image absent", str(path))
                    continue
                rows.append({"path": str(path), "modality": modality, **common})
    if not rows:
        raise UserError(f"{image_root}: none of the images named in the CSVs exists; unzip aligned_dataset.zip there")
    leaked = sum(len(splits) > 1 for splits in published.values())
    if leaked:
        result.count("subjects in more than one published split", leaked)
        result.warnings.append(f"{leaked} subjects appear in more than one published split; "
                               "use `ugn data split` for a subject-exclusive split")
    result.frame = frame(rows, COLUMNS)
    return result


def _find_image_root(source: Path) -> Path:
    for relative in IMAGE_ROOTS:
        candidate = source / relative
        if (candidate / "hands").is_dir() or (candidate / "faces").is_dir():
            return candidate
    raise UserError(f"{source}: no aligned_dataset/hands or /faces folder (looked in {', '.join(IMAGE_ROOTS)}); "
                    "unzip aligned_dataset.zip into SOURCE/images/")


def _cell(record: dict, column: str) -> object:
    value = record.get(column)
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else value
