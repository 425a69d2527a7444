"""Group metrics, between-group gaps and per-group thresholds, with fairlearn's MetricFrame.

For each attribute present (modality, age bucket, race, skin, gender; hand and finger for fingerprints) every
group — including "unknown", the rows with a missing value — gets n, accuracy, balanced accuracy, TPR, FPR,
ROC-AUC and selection rate, each with a 95% CI from resampling the group's subjects. Per-group thresholds are reported for analysis
only; they are never applied to the headline metrics.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn import metrics as skm

from unifiedgender.evaluation.bootstrap import gap_intervals, subject_bootstrap
from unifiedgender.evaluation.metrics import predict_labels
from unifiedgender.evaluation.table import EvaluationTable
from unifiedgender.evaluation.thresholds import select_threshold

GROUP_METRICS = ("accuracy", "balanced_accuracy", "tpr", "fpr", "roc_auc", "selection_rate")


def _needs_both_classes(metric):
    def wrapped(y_true, y_score):
        return float(metric(y_true, y_score)) if len(np.unique(y_true)) == 2 else float("nan")

    return wrapped


def _on_labels(metric, threshold: float, needs: int | None = None):
    """`metric(y_true, y_pred)` applied to probabilities thresholded at `threshold`; NaN when the group has no
    row of class `needs` (TPR needs males, FPR females)."""

    def wrapped(y_true, probs):
        if needs is not None and not (np.asarray(y_true) == needs).any():
            return float("nan")
        return float(metric(y_true, predict_labels(probs, threshold)))

    return wrapped


def group_metric_frame(y: np.ndarray, probs: np.ndarray, groups: pd.Series, threshold: float) -> MetricFrame:
    """One MetricFrame by group: n, ROC-AUC on the probabilities, the rest on predictions at `threshold`."""
    metrics = {
        "n": count,
        "accuracy": _on_labels(skm.accuracy_score, threshold),
        "balanced_accuracy": _needs_both_classes(_on_labels(skm.balanced_accuracy_score, threshold)),
        "tpr": _on_labels(true_positive_rate, threshold, needs=1),
        "fpr": _on_labels(false_positive_rate, threshold, needs=0),
        "roc_auc": _needs_both_classes(skm.roc_auc_score),
        "selection_rate": _on_labels(selection_rate, threshold),
    }
    # a Series, not an array: fairlearn squeezes an array, and one row would lose its only dimension
    return MetricFrame(metrics=metrics, y_true=y, y_pred=probs, sensitive_features=groups.reset_index(drop=True))


MIN_CI_SUBJECTS = 5  # a group's interval, and a gap's (in both groups), needs this many subjects: fewer cannot
# show their spread (2 subjects gave BA 0.286 [0.286, 0.286]); such groups are marked too_small, without intervals


def attribute_report(
    table: EvaluationTable,
    attribute: str,
    threshold: float,
    n_resamples: int,
    seed: int,
) -> dict:
    """Per-group metrics with CIs, between-group difference and ratio, DP and EO differences, for one attribute."""
    frame = table.frame
    groups = frame[f"group_{attribute}"]
    y, probs = table.labels, table.probs
    by_group = group_metric_frame(y, probs, groups, threshold).by_group
    out_groups: dict[str, dict] = {}
    for group, row in by_group.iterrows():
        mask = (groups == group).to_numpy()
        n_subjects = int(frame.loc[mask, "subject_id"].nunique())
        entry: dict[str, object] = {"n": int(row["n"]), "n_subjects": n_subjects, "too_small": n_subjects < MIN_CI_SUBJECTS}
        boot = (subject_bootstrap(y[mask], probs[mask], table.subjects[mask], threshold, n_resamples, seed)
                if n_resamples and not entry["too_small"] else None)
        for name in GROUP_METRICS:
            entry[name] = _clean(row[name])
            entry[f"{name}_ci"] = [_clean(v) for v in boot.interval(name)] if boot is not None else None
        out_groups[str(group)] = entry
    values = by_group[list(GROUP_METRICS)].astype(float)
    defined = values.notna().sum() >= 2  # a gap needs two groups where the metric is defined
    difference = (values.max() - values.min()).where(defined)
    ratio = (values.min() / values.max()).where(defined)
    # the gap is between the best and the worst group of each metric; its CI resamples subjects jointly
    pairs = {name: _extremes(values[name]) for name in GROUP_METRICS if defined[name]}
    pairs = {name: pair for name, pair in pairs.items() if min(out_groups[g]["n_subjects"] for g in pair) >= MIN_CI_SUBJECTS}
    gap_ci = (
        gap_intervals(y, probs, table.subjects, groups.astype(str).to_numpy(), pairs, threshold, n_resamples, seed)
        if n_resamples and pairs
        else {}
    )
    pred = predict_labels(probs, threshold)
    # fairlearn counts an undefined TPR or FPR (a group without males or females) as 0, which would invent a
    # gap: equalized odds is taken over the groups holding both classes, and the others are named
    one_class = sorted(g for g, e in out_groups.items() if e["tpr"] is None or e["fpr"] is None)
    both = ~groups.isin(one_class).to_numpy()
    dp = (
        demographic_parity_difference(y, pred, sensitive_features=groups.to_numpy())
        if len(out_groups) >= 2
        else float("nan")  # one group: there is no gap to measure
    )
    eo = (
        equalized_odds_difference(y[both], pred[both], sensitive_features=groups.to_numpy()[both])
        if len(out_groups) - len(one_class) >= 2
        else float("nan")
    )
    return {
        "groups": out_groups,
        "difference": {k: _clean(v) for k, v in difference.items()},
        "difference_groups": {k: list(v) for k, v in pairs.items()},
        "difference_ci": {k: [_clean(v) for v in gap_ci[k]] if k in gap_ci else None for k in difference.index},
        "ratio": {k: _clean(v) for k, v in ratio.items()},
        "demographic_parity_difference": _clean(dp),
        "equalized_odds_difference": _clean(eo),
        "equalized_odds_excluded_groups": one_class,
    }


def per_group_thresholds(table: EvaluationTable, attribute: str, method: str) -> dict[str, float | None]:
    """The threshold `method` would choose inside each group (None where a group lacks one class)."""
    out: dict[str, float | None] = {}
    groups = table.frame[f"group_{attribute}"]
    for group in sorted(groups.unique()):
        mask = (groups == group).to_numpy()
        y = table.labels[mask]
        out[str(group)] = select_threshold(y, table.probs[mask], method) if len(np.unique(y)) == 2 else None
    return out


def fairness_report(
    table: EvaluationTable,
    threshold: float,
    n_resamples: int,
    seed: int,
    threshold_method: str = "youden",
    threshold_table: EvaluationTable | None = None,
) -> dict:
    """attribute_report for every attribute present, and per-group thresholds reported separately.

    Per-group thresholds are chosen on `threshold_table` (validation predictions) when given, otherwise on
    the evaluated data itself — then they are optimistic and labelled so.
    """
    source_table = threshold_table if threshold_table is not None else table
    source = "validation predictions" if threshold_table is not None else "evaluation data (optimistic; analysis only)"
    report: dict[str, dict] = {}
    for attribute in table.group_attributes():
        entry = attribute_report(table, attribute, threshold, n_resamples, seed)
        if attribute in source_table.group_attributes():
            entry["per_group_thresholds"] = {
                "applied": False,
                "method": threshold_method,
                "chosen_on": source,
                "thresholds": per_group_thresholds(source_table, attribute, threshold_method),
            }
        report[attribute] = entry
    return report


def _extremes(column: pd.Series) -> tuple[str, str]:
    """(best group, worst group) of one metric; two different groups even when all values tie."""
    best = column.idxmax()
    return str(best), str(column.drop(best).idxmin())


def _clean(value) -> float | None:
    """JSON-friendly float: NaN and infinities become None."""
    value = float(value)
    return value if np.isfinite(value) else None
