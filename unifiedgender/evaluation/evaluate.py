"""Evaluate a predictions table: image- and subject-level metrics with subject-bootstrap CIs, fairness, threshold."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd

from unifiedgender.evaluation.age import age_report
from unifiedgender.evaluation.bootstrap import CI_LEVEL, subject_bootstrap
from unifiedgender.evaluation.fairness import fairness_report
from unifiedgender.evaluation.metrics import METRIC_NAMES, binary_metrics, confusion, majority_baseline
from unifiedgender.evaluation.table import DEFAULT_AGE_BUCKETS, EvaluationTable, prepare_table, subject_level
from unifiedgender.evaluation.thresholds import check_threshold, select_threshold

REPORT_FORMAT = "ugn-evaluation/1"


def evaluate_predictions(
    predictions: pd.DataFrame,
    *,
    threshold: float = 0.5,
    validation: pd.DataFrame | None = None,
    threshold_method: str = "youden",
    n_resamples: int = 1000,
    seed: int = 0,
    age_buckets: tuple[float, ...] = DEFAULT_AGE_BUCKETS,
    modalities: tuple[str, ...] | None = None,
    source: str = "predictions",
    training_majority: tuple[str, str] | None = None,
) -> tuple[dict, EvaluationTable]:
    """The full evaluation report (a JSON-ready dict) and the table of rows it used.

    With `validation` (a predictions table), the threshold is chosen on it by `threshold_method` and
    applied to `predictions`; otherwise `threshold` is used as given. `training_majority` = (class, where
    from) makes the baseline predict the training data's majority class; otherwise the evaluated data's.
    """
    table = prepare_table(predictions, age_buckets=age_buckets, modalities=modalities, source=source)
    validation_table = None
    if validation is not None:
        validation_table = prepare_table(validation, age_buckets, modalities, source="threshold validation table")
        threshold = select_threshold(validation_table.labels, validation_table.probs, threshold_method, "validation table")
        threshold_info = {"value": threshold, "method": threshold_method, "chosen_on": "validation predictions"}
    else:
        threshold = check_threshold(threshold)
        threshold_info = {"value": threshold, "method": "fixed", "chosen_on": "given"}
    subjects = subject_level(table)
    report = {
        "format": REPORT_FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": {
            "source": source,
            "n_rows": table.n_input,
            "n_evaluated": len(table.frame),
            "n_subjects": len(subjects.frame),
            "excluded": table.excluded,
            "n_excluded": int(sum(table.excluded.values())),
            "modalities": {str(k): int(v) for k, v in table.frame["modality"].value_counts().items()},
            "class_counts": {"male": int(table.labels.sum()), "female": int(len(table.labels) - table.labels.sum())},
            "subjects_with_mixed_labels": subjects.subjects_with_mixed_labels,
        },
        "threshold": threshold_info,
        "bootstrap": {"unit": "subject", "n_resamples": n_resamples, "seed": seed, "level": CI_LEVEL},
        "image_level": level_report(table, threshold, n_resamples, seed, training_majority),
        "subject_level": level_report(subjects, threshold, n_resamples, seed, training_majority),
        "fairness": fairness_report(table, threshold, n_resamples, seed, threshold_method, validation_table),
    }
    age = age_report(table.frame)
    if age is not None:
        report["age"] = age
    return report, table


def level_report(
    table: EvaluationTable, threshold: float, n_resamples: int, seed: int, training_majority: tuple[str, str] | None = None
) -> dict:
    """Metrics, their CIs, the confusion matrix and the majority-class baseline for one unit of analysis."""
    y, probs = table.labels, table.probs
    if training_majority is None:
        baseline = majority_baseline(y, "evaluation data")
    else:
        baseline = majority_baseline(y, training_majority[1], majority=int(training_majority[0] == "male"))
    point = binary_metrics(y, probs, threshold)
    ci: dict[str, list[float | None]] = {}
    if n_resamples:
        boot = subject_bootstrap(y, probs, table.subjects, threshold, n_resamples, seed)
        ci = {name: [_json_float(v) for v in boot.interval(name)] for name in METRIC_NAMES}
    return {
        "n": len(y),
        "metrics": {name: _json_float(point[name]) for name in METRIC_NAMES},
        "ci": ci,
        "confusion": confusion(y, probs, threshold),
        "baseline": {k: _json_float(v) if isinstance(v, float) else v for k, v in baseline.items()},
    }


def _json_float(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
