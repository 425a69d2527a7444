"""Generic class folders: ROOT/[SPLIT/]CLASS/* (e.g. virtual_img/TRAIN/FEMALE/*, the finger-fluting layout)."""

from __future__ import annotations

import re
from pathlib import Path

from unifiedgender.data.importers.base import ImportResult, frame, iter_images, require_dir
from unifiedgender.data.manifest import GENDERS, MODALITIES
from unifiedgender.errors import UserError

# Folder names understood as classes; label 1 = male everywhere in the project, so 0 = female, 1 = male.
DEFAULT_CLASSES = {"female": "female", "f": "female", "0": "female", "male": "male", "m": "male", "1": "male"}
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "tuning": "val", "tune": "val", "dev": "val", "test": "test", "testing": "test"}
COLUMNS = ("path", "subject_id", "gender", "modality", "split", "class_folder")


def parse_class_map(text: str | None) -> dict[str, str]:
    """'FEM=female,HOM=male' -> {'fem': 'female', 'hom': 'male'} added to the defaults (keys case-insensitive)."""
    mapping = dict(DEFAULT_CLASSES)
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, sep, gender = item.partition("=")
        if not sep or gender.strip().lower() not in GENDERS:
            raise UserError(f"--class-map: '{item}' is not FOLDER=male or FOLDER=female")
        mapping[name.strip().lower()] = gender.strip().lower()
    return mapping


def import_imagefolder(source: Path, modality: str | None = None, class_map: str | None = None,
                       subject_pattern: str | None = None) -> ImportResult:
    """One row per image; subject from --subject-pattern on the file name, else one subject per file (warned)."""
    require_dir(source, "image-folder root")
    if modality not in MODALITIES:
        raise UserError(f"imagefolder needs --modality (one of {', '.join(MODALITIES)}); got '{modality}'")
    classes = parse_class_map(class_map)
    pattern = _compile(subject_pattern)
    result = ImportResult(frame=frame([], COLUMNS), fmt="imagefolder", source=source)

    rows = []
    for split, class_dir in _class_folders(source, classes):
        for path in iter_images(class_dir):
            if pattern is None:
                subject = path.relative_to(source).with_suffix("").as_posix()
            else:
                match = pattern.search(path.name)
                if match is None:
                    result.problem("skipped: file name does not match --subject-pattern", str(path))
                    continue
                subject = match["subject"] if "subject" in pattern.groupindex else match[1] if pattern.groups else match[0]
            rows.append({"path": str(path), "subject_id": subject, "gender": classes[class_dir.name.lower()],
                         "modality": modality, "split": split, "class_folder": class_dir.name})
    if not rows:
        raise UserError(f"{source}: no images found in the class folders" +
                        (" that match --subject-pattern" if pattern is not None else ""))
    if pattern is None:
        result.warnings.append("no --subject-pattern: every file is its own subject, so one person's images can land "
                               "on both sides of a split; pass --subject-pattern REGEX (group 'subject') if names carry an id")
    df = frame(rows, COLUMNS)
    if df["split"].isna().all():
        df = df.drop(columns="split")
    result.frame = df
    return result


def _class_folders(source: Path, classes: dict[str, str]) -> list[tuple[str | None, Path]]:
    """[(split or None, class folder)] for ROOT/CLASS or ROOT/SPLIT/CLASS; UserError naming an unknown folder."""
    children = sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not children:
        raise UserError(f"{source}: no sub-folders; expected ROOT/CLASS/* or ROOT/SPLIT/CLASS/* (e.g. TRAIN/FEMALE/)")
    if any(child.name.lower() in classes for child in children):  # ROOT/CLASS/*
        _refuse_unknown(source, [c.name for c in children if c.name.lower() not in classes])
        return [(None, child) for child in children]
    found = []
    for child in children:  # ROOT/SPLIT/CLASS/*
        grandchildren = sorted(p for p in child.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not grandchildren:  # not a split folder, so an unknown class (ROOT/CLASS/*)
            _refuse_unknown(source, [child.name])
        _refuse_unknown(child, [g.name for g in grandchildren if g.name.lower() not in classes])
        split = SPLIT_NAMES.get(child.name.lower(), child.name.lower())
        found.extend((split, g) for g in grandchildren)
    return found


def _refuse_unknown(folder: Path, unknown: list[str]) -> None:
    if unknown:
        name = unknown[0]
        raise UserError(f"{folder}: folder '{name}' is not a known class name; "
                        f"map it with --class-map '{name}=female' or --class-map '{name}=male'")


def _compile(pattern: str | None) -> re.Pattern | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise UserError(f"--subject-pattern '{pattern}' is not a valid regular expression ({exc})") from exc
