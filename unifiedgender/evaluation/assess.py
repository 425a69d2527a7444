"""Evaluate a predictions table: image- and subject-level metrics with subject-bootstrap CIs, fairness, threshold."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd

from unifiedgender.data.ages import REPORT_AGE_EDGES
from unifiedgender.decision import Decision, Threshold, calibrated_probs, check_threshold
from unifiedgender.evaluation.age import age_report
from unifiedgender.evaluation.bootstrap import CI_LEVEL, subject_bootstrap
from unifiedgender.evaluation.fairness import fairness_report
from unifiedgender.evaluation.metrics import (
    METRIC_NAMES, binary_metrics, confusion, expected_calibration_error, majority_baseline,
)
from unifiedgender.evaluation.predictions import PRED, PROB, pred_labels
from unifiedgender.evaluation.shift import check_shift
from unifiedgender.evaluation.table import EvaluationTable, prepare_table, subject_level
from unifiedgender.evaluation.thresholds import select_threshold

REPORT_FORMAT = "ugn-evaluation/1"


def evaluate_predictions(
    predictions: pd.DataFrame,
    *,
    threshold: float | Threshold = 0.5,
    validation: pd.DataFrame | None = None,
    threshold_method: str = "youden",
    n_resamples: int = 1000,
    seed: int = 0,
    age_buckets: tuple[float, ...] = REPORT_AGE_EDGES,
    modalities: tuple[str, ...] | None = None,
    source: str = "predictions",
    training_majority: tuple[str, str] | None = None,
    decision: Decision | None = None,
) -> tuple[dict, EvaluationTable]:
    """The full evaluation report (a JSON-ready dict) and the table of rows it used.

    With `validation` (a predictions table), the threshold is chosen on it by `threshold_method` and
    applied to `predictions`; otherwise `threshold` is used as given (a number, or a Threshold that says where
    it came from, e.g. the model's stored one). Balanced accuracy at 0.5 is reported beside it. `decision`
    (the evaluated model's, when it stores one) adds the calibration (temperature, ECE before/after) and the
    shift check against its validation scores. `training_majority` = (class, where from) makes the baseline
    predict the training data's majority class; otherwise the evaluated data's.
    """
    table = prepare_table(predictions, age_buckets=age_buckets, modalities=modalities, source=source)
    validation_table = None
    if validation is not None:
        validation_table = prepare_table(validation, age_buckets, modalities, source="threshold validation table")
        value = select_threshold(validation_table.labels, validation_table.probs, threshold_method, "validation table")
        chosen = Threshold(value, threshold_method, "validation predictions")
    elif isinstance(threshold, Threshold):
        chosen = threshold
    else:
        chosen = Threshold(check_threshold(threshold), "fixed", "given")
    threshold = chosen.value
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
        "threshold": chosen.as_dict(),
        "bootstrap": {"unit": "subject", "n_resamples": n_resamples, "seed": seed, "level": CI_LEVEL},
        "image_level": level_report(table, threshold, n_resamples, seed, training_majority),
        "subject_level": level_report(subjects, threshold, n_resamples, seed, training_majority),
        "fairness": fairness_report(table, threshold, n_resamples, seed, threshold_method, validation_table),
    }
    if decision is not None and decision.stored:
        report["calibration"] = calibration_report(table, decision)
        shift = check_shift(decision.scores, table.probs, threshold)
        report["shift"] = None if shift is None else {k: _json_float(v) if isinstance(v, float) else v
                                                      for k, v in shift.as_dict().items()}
    age = age_report(table.frame)
    if age is not None:
        report["age"] = age
    return report, table


def calibration_report(table: EvaluationTable, decision: Decision) -> dict:
    """Temperature and the evaluated data's ECE without and with it (the raw P(male) is recovered from the
    calibrated one: sigmoid(T * logit(p)); with --tta from the mirror-averaged probability)."""
    probs = np.clip(table.probs, 1e-12, 1 - 1e-12)
    raw = calibrated_probs(decision.temperature * np.log(probs / (1 - probs)))
    return {
        "temperature": decision.temperature,
        "ece_uncalibrated": _json_float(expected_calibration_error(table.labels, raw)),
        "ece_calibrated": _json_float(expected_calibration_error(table.labels, table.probs)),
        "validation_ece": {k: _json_float(v) for k, v in decision.ece.items()},
        "fitted_on": decision.chosen_on,
    }


def labelled(predictions: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """A copy whose `pred` is male/female at `threshold` (empty where prob_male is missing): the file beside
    a report labels rows as the report counts them."""
    table = predictions.copy()
    table[PRED] = pred_labels(pd.to_numeric(table[PROB], errors="coerce"), threshold)
    return table


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
    half_ci: list[float | None] = []
    if n_resamples:
        boot = subject_bootstrap(y, probs, table.subjects, threshold, n_resamples, seed)
        ci = {name: [_json_float(v) for v in boot.interval(name)] for name in METRIC_NAMES}
        half = boot if threshold == 0.5 else subject_bootstrap(y, probs, table.subjects, 0.5, n_resamples, seed)
        half_ci = [_json_float(v) for v in half.interval("balanced_accuracy")]
    return {
        "n": len(y),
        "metrics": {name: _json_float(point[name]) for name in METRIC_NAMES},
        "ci": ci,
        "at_0.5": {"balanced_accuracy": _json_float(binary_metrics(y, probs, 0.5)["balanced_accuracy"]),
                   "balanced_accuracy_ci": half_ci},
        "confusion": confusion(y, probs, threshold),
        "baseline": {k: _json_float(v) if isinstance(v, float) else v for k, v in baseline.items()},
    }


def _json_float(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
