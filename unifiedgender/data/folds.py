"""Splits given by a manifest column: a dataset's own partition (CelebA's `split`) or a benchmark's folds
(Adience's `fold`), kept subject-exclusive.

- `split_by_column(df, "split")`: the column's values name the sides (train/val/test, also valid, dev, ...).
- `split_by_column(df, "fold", test_value="K")`: fold K is the test side; the other folds are split by
  subject into train/val by `ratios` (the seeded, stratified `split_manifest`), so selection never sees fold K.
- `fold_splits(df, "fold")`: the second form once per fold value (the k-fold cross-validation protocol).

The test side is always kept whole, as the benchmark defines it. A subject (or duplicate-content group, see
`split_units`) found on the test side is removed from val and train, and one on val from train; what was
removed is counted in the result, so the split is subject-exclusive even when the published one is not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from unifiedgender.data.importers.imagefolder import SPLIT_NAMES
from unifiedgender.data.split import split_manifest, split_units, write_splits
from unifiedgender.errors import UserError

SIDES = ("train", "val", "test")


@dataclass
class ColumnSplit:
    """Split manifests by side, plus what was set aside to keep them subject-exclusive."""

    parts: dict[str, pd.DataFrame]
    removed: dict[str, int] = field(default_factory=dict)  # side -> images removed (their subject is on a later side)
    removed_subjects: int = 0
    unassigned: int = 0  # rows whose column value is blank


def split_by_column(df: pd.DataFrame, column: str, test_value: str | None = None,
                    ratios: tuple[float, float] = (0.8, 0.2), seed: int = 0) -> ColumnSplit:
    """Split a validated manifest by `column` (see the module docstring); sides follow train, val, test order."""
    values = column_values(df, column)
    blank = values.isna()
    data = df[~blank].reset_index(drop=True)
    values = values[~blank].reset_index(drop=True)
    if data.empty:
        raise UserError(f"column '{column}' is blank in every row; nothing to split")
    if test_value is None:
        side = values.str.strip().str.lower().map(SPLIT_NAMES)
        if side.isna().any():
            bad = values[side.isna()].iloc[0]
            raise UserError(f"column '{column}': value '{bad}' is not a split name (train, val, test); "
                            f"give the test value with --test-fold to use '{column}' as folds")
        labelled = _keep_published(data)
        labelled["split"] = side.to_numpy()
    else:
        test = values == str(test_value)
        if not test.any():
            raise UserError(f"column '{column}' has no value '{test_value}'; it has {', '.join(sorted(values.unique()))}")
        if test.all():
            raise UserError(f"every row has {column} = '{test_value}'; nothing is left to train on")
        rest = split_manifest(data[~test.to_numpy()].reset_index(drop=True), ratios, seed)
        test_part = _keep_published(data[test.to_numpy()]).assign(split="test")
        labelled = pd.concat([rest["train"], rest["val"], test_part], ignore_index=True)
    result = _exclusive(labelled)
    result.unassigned = int(blank.sum())
    missing = [s for s in ("train", "val") if s not in result.parts]
    if missing:
        raise UserError(f"split by '{column}' gives no '{missing[0]}' rows; the column needs train and val values")
    return result


def fold_splits(df: pd.DataFrame, column: str, ratios: tuple[float, float] = (0.8, 0.2), seed: int = 0) -> dict[str, ColumnSplit]:
    """One train/val/test split per distinct value of `column`, that value being the test side."""
    values = column_values(df, column).dropna()
    folds = sorted(values.unique(), key=lambda v: (len(v), v))
    if len(folds) < 2:
        raise UserError(f"column '{column}' has {len(folds)} distinct value(s); cross-validation needs at least 2 folds")
    return {fold: split_by_column(df, column, fold, ratios, seed) for fold in folds}


def column_values(df: pd.DataFrame, column: str) -> pd.Series:
    """The column as text (3.0 -> '3'), NA where blank; UserError naming the columns when it is absent."""
    if column not in df.columns:
        raise UserError(f"the manifest has no column '{column}'; it has {', '.join(map(str, df.columns))}")
    series = df[column]
    if pd.api.types.is_numeric_dtype(series):
        text = series.map(lambda v: None if pd.isna(v) else f"{v:g}")
    else:
        text = series.map(lambda v: None if pd.isna(v) or not str(v).strip() else str(v).strip())
    return text.astype("object").where(text.notna(), None)


def write_fold_splits(folds: dict[str, ColumnSplit], outdir: str | os.PathLike[str], overwrite: bool = False) -> list[Path]:
    """OUTDIR/fold_<K>/train.csv, val.csv, test.csv for every fold; refuses before writing if one exists."""
    outdir = Path(outdir)
    if not overwrite:
        for fold, split in folds.items():
            for side in split.parts:
                if (outdir / f"fold_{fold}" / f"{side}.csv").exists():
                    raise UserError(f"{outdir / f'fold_{fold}' / f'{side}.csv'} already exists; pass --overwrite or choose another -o folder")
    written: list[Path] = []
    for fold, split in folds.items():
        written += write_splits(split.parts, outdir / f"fold_{fold}", overwrite=True)
    return written


def _keep_published(df: pd.DataFrame) -> pd.DataFrame:
    """A copy whose existing `split` column (a published split) is kept as `published_split`, as split_manifest does."""
    if "split" in df.columns and "published_split" not in df.columns:
        return df.rename(columns={"split": "published_split"})
    return df.copy()


def _exclusive(labelled: pd.DataFrame) -> ColumnSplit:
    """Remove from each side the units (subjects joined by dup_group) that lie on a later side."""
    unit_of = split_units(labelled)
    units = labelled["subject_id"].astype(str).map(unit_of)
    order = labelled["split"].map({s: i for i, s in enumerate(SIDES)})
    latest = order.groupby(units).transform("max")
    keep = order == latest
    result = ColumnSplit(parts={})
    for index, side in enumerate(SIDES):
        rows = labelled[(order == index).to_numpy()]
        if rows.empty:
            continue
        kept = keep[rows.index]
        if not kept.all():
            result.removed[side] = int((~kept).sum())
        result.parts[side] = rows[kept.to_numpy()].reset_index(drop=True)
    result.removed_subjects = int(labelled.loc[~keep.to_numpy(), "subject_id"].nunique())
    return result
