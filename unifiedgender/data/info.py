"""Summary tables of a manifest: images and subjects per gender, modality and demographic group."""

from __future__ import annotations

import pandas as pd

from unifiedgender.data.ages import REPORT_AGE_EDGES, report_age_group_names, report_age_groups
from unifiedgender.data.manifest import DEMOGRAPHIC_COLUMNS, GENDERS

AGE_GROUPS = report_age_group_names(REPORT_AGE_EDGES)


def group_table(df: pd.DataFrame, column: str | None) -> pd.DataFrame:
    """One row per value of `column` (or one 'all' row): images and subjects per gender and in total."""
    keys = pd.Series("all", index=df.index) if column is None else _group_values(df[column])
    records = []
    for value in sorted(keys.unique(), key=_order):
        rows = df[keys == value]
        record: dict[str, object] = {column or "group": value}
        for gender in GENDERS:
            part = rows[rows["gender"] == gender]
            record[f"{gender} images"] = len(part)
            record[f"{gender} subjects"] = part["subject_id"].nunique()
        record["images"] = len(rows)
        record["subjects"] = rows["subject_id"].nunique()
        records.append(record)
    return pd.DataFrame(records)


def manifest_tables(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(title, table) for: everything, modality, each demographic column present, published split, dup groups."""
    tables = [("All images", group_table(df, None)), ("By modality", group_table(df, "modality"))]
    for column in (*DEMOGRAPHIC_COLUMNS, "split"):
        if column in df.columns and df[column].notna().any():
            tables.append((f"By {column}", group_table(df, column)))
    if "dup_group" in df.columns and df["dup_group"].notna().any():
        dups = df.dropna(subset=["dup_group"])
        spans = dups.groupby("dup_group")["subject_id"].nunique()
        tables.append(("Byte-identical images", pd.DataFrame([{
            "groups": len(spans), "images": len(dups), "groups across subjects": int((spans > 1).sum())}])))
    return tables


def _group_values(values: pd.Series) -> pd.Series:
    """Numeric ages become the reporting age groups (those of the fairness breakdown); blanks become 'unknown';
    everything else is kept as text."""
    if values.name == "age":
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().sum() == values.notna().sum() and numeric.notna().any():
            groups = pd.Series(report_age_groups(numeric.to_numpy(dtype=float)), index=values.index, dtype=object)
            return groups.where(groups.notna(), "unknown").astype(str)
    return values.astype("object").where(values.notna(), "unknown").astype(str)


def _order(value: str) -> tuple[int, str]:
    return (AGE_GROUPS.index(value) if value in AGE_GROUPS else len(AGE_GROUPS), str(value))
