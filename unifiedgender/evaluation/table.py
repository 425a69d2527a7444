"""The predictions table: read and validate it, keep the evaluable rows, derive the fairness group columns.

Contract (docs/architecture.md): path, subject_id, modality, demographic columns, gender (truth when known),
prob_male, pred, status. Rows whose status is not "ok", or that have no truth or no probability, are
excluded from the metrics and counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from unifiedgender.data.ages import REPORT_AGE_EDGES, report_age_groups
from unifiedgender.data.manifest import GENDERS, check_unique_files, gender_to_label
from unifiedgender.errors import UserError

PREDICTION_COLUMNS = ("subject_id", "modality", "gender", "prob_male")
UNKNOWN = "unknown"
GROUP_ATTRIBUTES = ("modality", "age", "race", "skin", "gender", "hand", "finger")  # hand, finger: fingerprints


@dataclass
class EvaluationTable:
    """The rows that enter the metrics, plus a count of the rows left out and why."""

    frame: pd.DataFrame  # ok rows only; adds `label` (1 = male) and `group_<attribute>` columns
    excluded: dict[str, int] = field(default_factory=dict)
    n_input: int = 0
    subjects_with_mixed_labels: int = 0  # subject-level tables: subjects whose images disagree on the label

    @property
    def labels(self) -> np.ndarray:
        return self.frame["label"].to_numpy(dtype=np.int64)

    @property
    def probs(self) -> np.ndarray:
        return self.frame["prob_male"].to_numpy(dtype=np.float64)

    @property
    def subjects(self) -> np.ndarray:
        return self.frame["subject_id"].to_numpy()

    def group_attributes(self) -> list[str]:
        """Attributes present in the table, in GROUP_ATTRIBUTES order."""
        return [a for a in GROUP_ATTRIBUTES if f"group_{a}" in self.frame.columns]


def read_table_csv(path: str | os.PathLike[str], missing: str, fix: str) -> pd.DataFrame:
    """A per-image CSV (subject_id, path and status read as text); UserError `missing` when the file is absent,
    or naming the file and `fix` when it is not a readable CSV."""
    path = Path(path)
    if not path.is_file():
        raise UserError(missing)
    try:
        return pd.read_csv(path, dtype={"subject_id": str, "path": str, "status": str})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"{path}: not a readable CSV ({exc}); {fix}") from exc


def read_predictions(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a predictions CSV; raise UserError naming the file and the missing column."""
    df = read_table_csv(path, f"predictions table not found: {path}; write one with `ugn predict` or `ugn evaluate`",
                        "check the file")
    check_predictions(df, source=str(path))
    return df


def check_predictions(df: pd.DataFrame, source: str = "predictions") -> None:
    """Validate the columns and values the metrics need."""
    missing = [c for c in PREDICTION_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(
            f"{source}: missing column '{missing[0]}' (a predictions table needs {', '.join(PREDICTION_COLUMNS)}); "
            "produce it with `ugn predict` or `ugn evaluate`"
        )
    no_subject = df["subject_id"].isna() | (df["subject_id"].astype(str).str.strip() == "")
    if no_subject.any():
        row = int(np.flatnonzero(no_subject.to_numpy())[0])
        raise UserError(f"{source}: row {row + 2}: empty subject_id; every image needs its subject for subject-level CIs")
    if "path" in df.columns:
        check_unique_files(df["path"], source)  # the same image twice would count twice in every metric
    probs = pd.to_numeric(df["prob_male"], errors="coerce")
    bad = df["prob_male"].notna() & (probs.isna() | (probs < 0) | (probs > 1))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise UserError(
            f"{source}: row {row + 2}: prob_male '{df['prob_male'].iloc[row]}' is not a probability in [0, 1]; fix the value"
        )
    truth = df["gender"].dropna()
    wrong = ~truth.isin(GENDERS)
    if wrong.any():
        raise UserError(
            f"{source}: gender '{truth[wrong].iloc[0]}' is not one of {', '.join(GENDERS)}; fix the value or leave it empty"
        )


def prepare_table(
    df: pd.DataFrame,
    age_buckets: tuple[float, ...] = REPORT_AGE_EDGES,
    modalities: tuple[str, ...] | None = None,
    source: str = "predictions",
) -> EvaluationTable:
    """Keep the evaluable rows (status ok, truth and probability present) and add label and group columns."""
    check_predictions(df, source=source)
    if modalities:
        df = df[df["modality"].isin(modalities)]
        if df.empty:
            raise UserError(f"{source}: no rows with modality {', '.join(modalities)}; check --modality")
    status = df["status"].fillna("missing status").astype(str) if "status" in df.columns else pd.Series("ok", index=df.index)
    excluded: dict[str, int] = {}
    for reason, count in status[status != "ok"].value_counts().items():
        excluded[str(reason)] = int(count)
    keep = status == "ok"
    for column, reason in (("gender", "no ground-truth gender"), ("prob_male", "no probability")):
        lacking = keep & df[column].isna()
        if lacking.any():
            excluded[reason] = int(lacking.sum())
        keep &= ~df[column].isna()
    frame = df[keep].copy().reset_index(drop=True)
    if frame.empty:
        raise UserError(f"{source}: no rows with status 'ok', a gender and a probability; nothing to evaluate")
    frame["subject_id"] = frame["subject_id"].astype(str)
    frame["prob_male"] = frame["prob_male"].astype(np.float64)
    frame["label"] = gender_to_label(frame["gender"])
    for attribute in GROUP_ATTRIBUTES:
        if attribute in frame.columns:
            frame[f"group_{attribute}"] = group_values(frame[attribute], attribute, age_buckets)
    return EvaluationTable(frame=frame, excluded=excluded, n_input=len(df))


def group_values(values: pd.Series, attribute: str, age_buckets: tuple[float, ...]) -> pd.Series:
    """Group labels for one attribute; a missing value becomes the explicit group "unknown"."""
    if attribute == "age":
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().sum() == values.notna().sum():  # purely numeric ages: bucket them
            groups = pd.Series(report_age_groups(numeric.to_numpy(dtype=float), age_buckets), index=values.index, dtype=object)
            return groups.where(groups.notna(), UNKNOWN)
    if pd.api.types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
        values = values.astype("Int64")  # skin tone 3.0 (a float only because of blanks) is shown as 3
    text = values.astype("string").str.strip()
    return text.mask(text.isna() | (text == ""), UNKNOWN).astype(str)


def subject_level(table: EvaluationTable) -> EvaluationTable:
    """One row per subject: mean probability over its images; its label is its images' majority label.

    Group columns take the subject's first value (subjects rarely change modality or demographics; where a
    subject has several modalities the modality group is "mixed").
    """
    frame = table.frame
    grouped = frame.groupby("subject_id", sort=False)
    out = grouped.agg(prob_male=("prob_male", "mean"), label_mean=("label", "mean"), n_images=("label", "size"))
    out["label"] = (out["label_mean"] >= 0.5).astype(np.int64)
    mixed_labels = int(((out["label_mean"] > 0) & (out["label_mean"] < 1)).sum())
    for column in [c for c in frame.columns if c.startswith("group_")]:
        firsts = grouped[column].first()
        if column == "group_modality":
            firsts = firsts.where(grouped[column].nunique() == 1, "mixed")
        out[column] = firsts
    out["gender"] = np.where(out["label"] == 1, "male", "female")
    out = out.drop(columns="label_mean").reset_index()
    return EvaluationTable(frame=out, excluded=dict(table.excluded), n_input=table.n_input, subjects_with_mixed_labels=mixed_labels)
