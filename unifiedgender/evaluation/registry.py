"""The run registry: metrics/final_metrics_with_full_configurations.csv, one row per evaluation.

Appends are safe under concurrent writers: each takes an exclusive file lock (`<csv>.lock`), reads the file,
adds its row (the column set may grow: old rows get empty cells) and atomically replaces the file. Every cell
is kept as text, so rows written by others (such as the CSV UnifiedGenderNet publishes) survive unchanged.

Reading also understands UnifiedGenderNet's layout: a `configuration` column holding a Python-literal dict
(parsed with ast.literal_eval, never eval) whose keys (flag_on, mean_acc, ...) become columns, a `category`
column, and the short metric names bal_acc / test_modality.
"""

from __future__ import annotations

import ast
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from filelock import FileLock, Timeout

from unifiedgender.errors import UserError
from unifiedgender.fileio import atomic_write

DEFAULT_REGISTRY = Path("metrics/final_metrics_with_full_configurations.csv")
LOCK_TIMEOUT_S = 120
COLUMN_ALIASES = {
    "bal_acc": "balanced_accuracy",
    "balanced_acc": "balanced_accuracy",
    "acc": "accuracy",
    "auc": "roc_auc",
    "test_modality": "modality",
}


def _cell(value) -> str:
    """Registry cells are text: None/NaN -> empty, floats at full precision, dicts/lists as JSON."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def append_run(path: str | os.PathLike[str], row: dict) -> Path:
    """Append one row under an exclusive lock and atomically rewrite the CSV (new columns go at the end)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new_row = {key: _cell(value) for key, value in row.items()}
    try:
        with FileLock(f"{path}.lock", timeout=LOCK_TIMEOUT_S):
            existing = _read_text_frame(path) if path.exists() else pd.DataFrame()
            columns = list(existing.columns) + [c for c in new_row if c not in existing.columns]
            combined = pd.concat([existing, pd.DataFrame([new_row], dtype=str)], ignore_index=True)
            combined = combined.reindex(columns=columns).fillna("")
            with atomic_write(path, newline="", encoding="utf-8") as handle:
                combined.to_csv(handle, index=False)
    except Timeout as exc:
        raise UserError(f"{path}: locked by another writer for {LOCK_TIMEOUT_S}s; remove {path}.lock if no job is running") from exc
    return path


def _read_text_frame(path: Path) -> pd.DataFrame:
    if path.stat().st_size == 0:
        return pd.DataFrame()
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable CSV ({exc}); fix or move the registry file") from exc
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def registry_row(report: dict, run: dict) -> dict:
    """One registry row: run description (tag, arch, configuration, datasets, split, checkpoint) and every metric
    with its CI bounds, image- and subject-level, plus the baseline and each attribute's fairness gaps."""
    from unifiedgender.evaluation.metrics import METRIC_NAMES  # scikit-learn: kept out of plain appends and reads

    row: dict[str, object] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tag": run.get("tag"),
        "arch": run.get("arch"),
        "backbone": run.get("backbone"),
        "category": run.get("category", "evaluation"),
        "configuration": json.dumps(run.get("configuration") or {}, sort_keys=True, default=str),
        "train_dataset": run.get("train_dataset"),
        "test_dataset": run.get("test_dataset"),
        "split": run.get("split"),
        "modality": "+".join(sorted(report["data"]["modalities"])),
        "checkpoint": run.get("checkpoint"),
        "predictions": run.get("predictions"),
        "report": run.get("report"),
        "threshold": report["threshold"]["value"],
        "threshold_method": report["threshold"]["method"],
        "n_images": report["data"]["n_evaluated"],
        "n_subjects": report["data"]["n_subjects"],
        "n_excluded": report["data"]["n_excluded"],
        "bootstrap_resamples": report["bootstrap"]["n_resamples"],
        "seed": report["bootstrap"]["seed"],
    }
    for prefix, level in (("", report["image_level"]), ("subject_", report["subject_level"])):
        for name in METRIC_NAMES:
            low, high = level["ci"].get(name) or (None, None)
            row[f"{prefix}{name}"] = level["metrics"][name]
            row[f"{prefix}{name}_ci_low"] = low
            row[f"{prefix}{name}_ci_high"] = high
        half_low, half_high = level["at_0.5"]["balanced_accuracy_ci"] or (None, None)
        row[f"{prefix}balanced_accuracy_at_0.5"] = level["at_0.5"]["balanced_accuracy"]
        row[f"{prefix}balanced_accuracy_at_0.5_ci_low"] = half_low
        row[f"{prefix}balanced_accuracy_at_0.5_ci_high"] = half_high
        row[f"{prefix}baseline_accuracy"] = level["baseline"]["accuracy"]
        row[f"{prefix}baseline_balanced_accuracy"] = level["baseline"]["balanced_accuracy"]
    row["baseline_class_from"] = report["image_level"]["baseline"]["majority_class_from"]
    calibration, shift = report.get("calibration") or {}, report.get("shift") or {}
    row["temperature"] = calibration.get("temperature")
    row["ece_uncalibrated"] = calibration.get("ece_uncalibrated")
    row["shift_warning"] = shift.get("shifted")
    for attribute, entry in report["fairness"].items():
        row[f"{attribute}_demographic_parity_difference"] = entry["demographic_parity_difference"]
        row[f"{attribute}_equalized_odds_difference"] = entry["equalized_odds_difference"]
        row[f"{attribute}_balanced_accuracy_difference"] = entry["difference"]["balanced_accuracy"]
    return row


def parse_configuration(text: str) -> dict:
    """A configuration cell: JSON (ours) or a Python-literal dict (UnifiedGenderNet's); {} when neither."""
    if not text or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return {}
    return value if isinstance(value, dict) else {}


def read_registry(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The registry as a frame: aliases resolved, configuration keys as columns, numeric columns as numbers."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"run registry not found: {path}; run `ugn evaluate` or `ugn download metrics`, or pass --registry")
    df = _read_text_frame(path)
    for alias, canonical in COLUMN_ALIASES.items():
        if alias in df.columns:  # their short name; where a row has both, ours wins
            merged = df[canonical].where(df[canonical] != "", df[alias]) if canonical in df.columns else df[alias]
            df = df.drop(columns=alias).assign(**{canonical: merged})
    if "configuration" in df.columns:
        configs = [parse_configuration(text) for text in df["configuration"]]
        keys = sorted({key for config in configs for key in config})
        for key in keys:
            column = COLUMN_ALIASES.get(key, key)
            if column not in df.columns:
                df[column] = [_cell(config.get(key)) for config in configs]
    for column in df.columns:
        numeric = pd.to_numeric(df[column].replace("", pd.NA), errors="coerce")
        if numeric.notna().any() and numeric.notna().sum() == (df[column] != "").sum():
            df[column] = numeric
    return df


def best_runs(
    df: pd.DataFrame,
    sort: str = "balanced_accuracy",
    k: int = 10,
    arch: str | None = None,
    modality: str | None = None,
    dataset: str | None = None,
    category: str | None = None,
    ascending: bool = False,
) -> pd.DataFrame:
    """Filter by case-insensitive substring and return the top `k` rows by `sort`."""
    sort = COLUMN_ALIASES.get(sort, sort)
    if sort not in df.columns:
        numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
        raise UserError(f"--sort '{sort}': no such column in the registry; numeric columns: {', '.join(numeric) or 'none'}")
    if not pd.api.types.is_numeric_dtype(df[sort]):
        raise UserError(f"--sort '{sort}': the column is not numeric; choose a metric column")
    for value, columns in (
        (arch, ("arch", "tag")),
        (modality, ("modality",)),
        (dataset, ("test_dataset", "train_dataset", "dataset")),
        (category, ("category",)),
    ):
        if value:
            present = [c for c in columns if c in df.columns]
            if not present:
                raise UserError(f"cannot filter on '{value}': the registry has none of the columns {', '.join(columns)}")
            mask = pd.Series(False, index=df.index)
            for column in present:
                mask |= df[column].astype(str).str.contains(value, case=False, regex=False, na=False)
            df = df[mask]
    return df.sort_values(sort, ascending=ascending, na_position="last").head(k)
