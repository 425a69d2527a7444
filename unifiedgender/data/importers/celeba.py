"""CelebA (Liu et al. 2015): aligned faces with 40 binary attributes, identities and the official partition.

Two native variants; the annotation files may lie in SOURCE or in its `Anno/` and `Eval/` folders, the images
in `img_align_celeba/` (also `Img/img_align_celeba/` and the Kaggle copy's `img_align_celeba/img_align_celeba/`):

- the original release (text files, whitespace-separated):
  `list_attr_celeba.txt`: line 1 the image count, line 2 the 40 attribute names, then
  `000001.jpg -1  1  1 -1 ...` (1 = has the attribute, -1 = has not);
  `identity_CelebA.txt`: `000001.jpg 2880` (the person); `list_eval_partition.txt`: `000001.jpg 0`
  (0 = train, 1 = val, 2 = test).
- the CSV copy (Kaggle): `list_attr_celeba.csv` (`image_id,5_o_Clock_Shadow,...`, values 1/-1) and
  `list_eval_partition.csv` (`image_id,partition`). It has **no identity file**.

Manifest: `gender` from `Male` (1 = male, -1 = female), `young` from `Young` (1/0), `split` = the official
partition (train/val/test), `image_id`. With identities, subject = `celeba_<identity>`, and subjects found in
more than one partition are counted and reported. Without them every image is its own subject (`celeba_<image
stem>`) and a warning says so: split by the official partition (`ugn data split --by-column split`) instead.
Rows whose image is absent are counted and listed. Files are parsed column-wise, so 202,599 rows take seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from unifiedgender.data.importers.base import MAX_LISTED, ImportResult, frame, read_csv_columns, require_dir
from unifiedgender.errors import UserError

ANNOTATION_FOLDERS = ("", "Anno", "Eval", "anno", "eval")
IMAGE_FOLDERS = ("img_align_celeba/img_align_celeba", "img_align_celeba", "Img/img_align_celeba")
PARTITIONS = {0: "train", 1: "val", 2: "test"}
COLUMNS = ("path", "subject_id", "gender", "modality", "young", "split", "image_id")
NO_IDENTITIES = ("the CelebA CSV variant has no identity file: subjects are unknown, so every image is its own subject "
                 "and a random split could put one person on both sides; use the official partition instead "
                 "(`ugn data split MANIFEST --by-column split`), or add identity_CelebA.txt")


def import_celeba(source: Path) -> ImportResult:
    """One row per annotated image that exists; see the module docstring for the two variants."""
    require_dir(source, "CelebA")
    attr_txt, attr_csv = _find(source, "list_attr_celeba.txt"), _find(source, "list_attr_celeba.csv")
    if attr_txt is None and attr_csv is None:
        raise UserError(f"{source}: neither list_attr_celeba.txt nor list_attr_celeba.csv found "
                        f"(looked in SOURCE and {', '.join(f for f in ANNOTATION_FOLDERS if f)}); pass the CelebA folder")
    if attr_txt is not None:
        table = _read_attr_txt(attr_txt)
        partition_path, identity_path = _find(source, "list_eval_partition.txt"), _find(source, "identity_CelebA.txt")
        partitions = _read_pairs(partition_path, "partition") if partition_path else None
    else:
        table = _read_attr_csv(attr_csv)
        partition_path, identity_path = _find(source, "list_eval_partition.csv"), _find(source, "identity_CelebA.txt")
        partitions = None
        if partition_path is not None:
            partitions = read_csv_columns(partition_path, ("image_id", "partition"), dtype={"image_id": str})
            partitions = partitions.set_index("image_id")["partition"]
    identities = _read_pairs(identity_path, "identity") if identity_path else None
    image_root = _image_folder(source)
    result = ImportResult(frame=frame([], COLUMNS), fmt="celeba", source=source)

    with os.scandir(image_root) as entries:
        present = {entry.name for entry in entries if entry.is_file()}
    exists = np.fromiter((name in present for name in table["image_id"].tolist()), dtype=bool, count=len(table))
    if not exists.all():
        absent = table.loc[~exists, "image_id"]
        result.count("skipped: image absent", len(absent))
        result.problems["skipped: image absent"] = [os.path.join(image_root, n) for n in absent[:MAX_LISTED]]
    table = table[exists]
    if table.empty:
        raise UserError(f"{image_root}: none of the images listed in the attribute file exists; unpack img_align_celeba there")

    out = pd.DataFrame({
        "path": image_root + os.sep + table["image_id"],
        "gender": np.where(table["Male"].to_numpy() == 1, "male", "female"),
        "modality": "face",
        "young": (table["Young"].to_numpy() == 1).astype(np.int64),
        "image_id": table["image_id"].to_numpy(),
    })
    out["split"] = _partition_column(out["image_id"], partitions, partition_path, result)
    if identities is not None:
        subject = out["image_id"].map(identities)
        unknown = subject.isna()
        if unknown.any():
            result.count("skipped: no identity in identity_CelebA.txt", int(unknown.sum()))
            result.problems["skipped: no identity in identity_CelebA.txt"] = out.loc[unknown, "image_id"][:MAX_LISTED].tolist()
            out, subject = out[~unknown], subject[~unknown]
        out["subject_id"] = "celeba_" + subject.astype(str)
        _report_crossing(out, result)
    else:
        out["subject_id"] = "celeba_" + out["image_id"].str.rsplit(".", n=1).str[0]
        result.warnings.append(NO_IDENTITIES)
    if partitions is None:
        result.warnings.append("no list_eval_partition file: the official partition is unknown (`split` left empty)")
    result.frame = out[list(COLUMNS)].reset_index(drop=True)
    return result


def _find(source: Path, name: str) -> Path | None:
    for folder in ANNOTATION_FOLDERS:
        path = source / folder / name
        if path.is_file():
            return path
    return None


def _image_folder(source: Path) -> str:
    for relative in IMAGE_FOLDERS:
        if (source / relative).is_dir():
            return str(source / relative)
    raise UserError(f"{source}: no image folder (looked for {', '.join(IMAGE_FOLDERS)}); unzip img_align_celeba.zip into SOURCE")


def _read_attr_txt(path: Path) -> pd.DataFrame:
    """list_attr_celeba.txt: count line, names line, then `<image> <40 x 1|-1>` (any run of spaces)."""
    with open(path, encoding="utf-8-sig") as handle:
        count, names = handle.readline().strip(), handle.readline().split()
    if not count.isdigit() or not names:
        raise UserError(f"{path}: line 1 must be the image count and line 2 the attribute names; is this list_attr_celeba.txt?")
    try:
        table = pd.read_csv(path, sep=r"\s+", skiprows=2, header=None, names=["image_id", *names],
                            dtype={"image_id": str}, engine="c")
    except (pd.errors.ParserError, ValueError) as exc:
        raise UserError(f"{path}: rows do not match the {len(names)} attribute names ({str(exc)[:120]}); check the file") from exc
    if len(table) != int(count):
        raise UserError(f"{path}: line 1 says {count} images but {len(table)} rows follow; the file is cut short or edited")
    return _check_attributes(table, path)


def _read_attr_csv(path: Path) -> pd.DataFrame:
    return _check_attributes(read_csv_columns(path, ("image_id", "Male", "Young"), dtype={"image_id": str}), path)


def _check_attributes(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """`Male` and `Young` present and every value 1 or -1; the first bad cell is named."""
    for column in ("Male", "Young"):
        if column not in table.columns:
            raise UserError(f"{path}: no '{column}' attribute; is this list_attr_celeba?")
        bad = ~table[column].isin((1, -1))
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise UserError(f"{path}: image {table['image_id'].iloc[row]}: {column} = '{table[column].iloc[row]}', "
                            "expected 1 or -1; fix the row")
    duplicated = table["image_id"].duplicated()
    if duplicated.any():
        raise UserError(f"{path}: image {table['image_id'][duplicated].iloc[0]} is listed twice; fix the file")
    return table


def _read_pairs(path: Path, what: str) -> pd.Series:
    """`<image> <integer>` per line (identity or partition) as a Series indexed by image name."""
    try:
        pairs = pd.read_csv(path, sep=r"\s+", header=None, names=["image_id", what], dtype={"image_id": str}, engine="c")
    except (pd.errors.ParserError, ValueError) as exc:
        raise UserError(f"{path}: not '<image> <number>' per line ({str(exc)[:120]}); check the file") from exc
    if not pd.api.types.is_integer_dtype(pairs[what]):
        bad = pd.to_numeric(pairs[what], errors="coerce").isna() | (pairs[what].astype(str).str.contains(r"\."))
        row = int(np.argmax(bad.to_numpy()))
        raise UserError(f"{path}: line {row + 1}: {what} '{pairs[what].iloc[row]}' is not a whole number; fix the row")
    return pairs.set_index("image_id")[what]


def _partition_column(images: pd.Series, partitions: pd.Series | None, path: Path | None, result: ImportResult) -> pd.Series:
    if partitions is None:
        return pd.Series(pd.NA, index=images.index, dtype="object")
    codes = images.map(partitions)
    bad = codes.notna() & ~codes.isin(tuple(PARTITIONS))
    if bad.any():
        first = images[bad].iloc[0]
        raise UserError(f"{path}: image {first}: partition '{codes[bad].iloc[0]}' is not 0, 1 or 2; fix the row")
    if codes.isna().any():
        result.count("no partition (split left empty)", int(codes.isna().sum()))
    return codes.map(PARTITIONS)


def _report_crossing(out: pd.DataFrame, result: ImportResult) -> None:
    spread = out.dropna(subset=["split"]).groupby("subject_id")["split"].nunique()
    crossing = spread[spread > 1]
    result.count("subjects in more than one partition", len(crossing))
    if len(crossing):
        result.warnings.append(f"{len(crossing)} identities appear in more than one official partition "
                               f"(e.g. {', '.join(crossing.index[:5])}); the official split is then not subject-exclusive")
