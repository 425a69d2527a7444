"""The run log (the "run registry" of `ugn evaluate`/`ugn runs`): metrics/final_metrics_with_full_configurations.csv,
one row per evaluation, described by a RunInfo.

Appends are safe under concurrent writers: each takes an exclusive file lock (`<csv>.lock`), reads the file,
adds its row (the column set may grow: old rows get empty cells) and atomically replaces the file. Every cell
is kept as text, so rows written by others (such as the CSV UnifiedGenderNet publishes) survive unchanged.

Reading also understands UnifiedGenderNet's layout: a `configuration` column holding a Python-literal dict
(parsed with ast.literal_eval, never eval) whose keys (flag_on, mean_acc, ...) become columns, a `category`
column, and the short metric names bal_acc / test_modality.

Only the standard library at import time (the CLI reads DEFAULT_REGISTRY and RUN_FORMATS for its help): pandas,
filelock and scikit-learn are imported by the functions that need them.
"""

from __future__ import annotations

import ast
import json
import math
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unifiedgender.errors import UserError
from unifiedgender.fileio import atomic_write

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_REGISTRY = Path("metrics/final_metrics_with_full_configurations.csv")
LOCK_TIMEOUT_S = 120
COLUMN_ALIASES = {
    "bal_acc": "balanced_accuracy",
    "balanced_acc": "balanced_accuracy",
    "acc": "accuracy",
    "auc": "roc_auc",
    "test_modality": "modality",
}


@dataclass
class RunInfo:
    """What one evaluation evaluated: the model (tag, arch, backbone, configuration, checkpoint), the data (train
    and test datasets, split, or a predictions table) and where its report went; one registry row with the metrics."""

    tag: str | None = None
    arch: str | None = None
    backbone: str | None = None
    category: str = "evaluation"
    configuration: dict[str, Any] = field(default_factory=dict)
    train_dataset: str | None = None
    test_dataset: str | None = None
    split: str | None = None
    checkpoint: str | None = None
    predictions: str | None = None
    report: str | None = None
    tta: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        """The run as report.json's `run` (without the configuration, which the registry row carries)."""
        return {k: v for k, v in asdict(self).items() if k != "configuration"}


def _cell(value) -> str:
    """Registry cells are text: None/NaN -> empty, floats at full precision, dicts/lists as JSON."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def append_run(path: str | os.PathLike[str], row: dict) -> Path:
    """Append one row under an exclusive lock and atomically rewrite the CSV (new columns go at the end)."""
    import pandas as pd
    from filelock import FileLock, Timeout

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
    import pandas as pd

    if path.stat().st_size == 0:
        return pd.DataFrame()
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable CSV ({exc}); fix or move the registry file") from exc
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def registry_row(report: dict, run: RunInfo) -> dict:
    """One registry row: run description (tag, arch, configuration, datasets, split, checkpoint) and every metric
    with its CI bounds, image- and subject-level, plus the baseline and each attribute's fairness gaps."""
    from unifiedgender.evaluation.metrics import METRIC_NAMES  # scikit-learn: kept out of plain appends and reads

    row: dict[str, object] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tag": run.tag,
        "arch": run.arch,
        "backbone": run.backbone,
        "category": run.category,
        "configuration": json.dumps(run.configuration, sort_keys=True, default=str),
        "train_dataset": run.train_dataset,
        "test_dataset": run.test_dataset,
        "split": run.split,
        "modality": "+".join(sorted(report["data"]["modalities"])),
        "checkpoint": run.checkpoint,
        "predictions": run.predictions,
        "report": run.report,
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
    import pandas as pd

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
    import pandas as pd

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


RUN_FORMATS = ("table", "csv", "json")  # how `ugn runs` prints the chosen rows
READABLE_COLUMNS = ("tag", "arch", "category", "modality", "test_dataset", "n_subjects", "accuracy", "balanced_accuracy",
                    "roc_auc", "threshold", "date")


def run_columns(df: pd.DataFrame, sort: str, wanted: list[str] | None = None, readable: bool = True) -> list[str]:
    """The columns `ugn runs` shows: `wanted` (names checked), else a readable set around the sort metric (for a
    table), else every column (CSV/JSON)."""
    sort = COLUMN_ALIASES.get(sort, sort)
    if wanted:
        names = [COLUMN_ALIASES.get(c.strip(), c.strip()) for c in wanted if c.strip()]
        missing = [c for c in names if c not in df.columns]
        if missing:
            raise UserError(f"--columns '{missing[0]}': no such column in the registry; columns: {', '.join(df.columns)}")
        return names
    if not readable:
        return list(df.columns)
    names = [c for c in READABLE_COLUMNS if c in df.columns and c != "date"]
    if sort not in names:
        names.append(sort)
    return names + (["date"] if "date" in df.columns else [])
