"""Point metrics of a binary male/female classifier, computed with scikit-learn (label 1 = male = positive).

Sensitivity is the recall of males, specificity the recall of females. A metric that needs both classes
(balanced accuracy, ROC-AUC, PR-AUC, log loss) is NaN on data holding one class only.
"""

from __future__ import annotations


import numpy as np
from sklearn import metrics as skm

ECE_BINS = 10
METRIC_NAMES = (
    "accuracy",
    "balanced_accuracy",
    "roc_auc",
    "pr_auc",
    "f1",
    "sensitivity",
    "specificity",
    "log_loss",
    "brier",
    "ece",
)


def predict_labels(probs: np.ndarray, threshold: float) -> np.ndarray:
    """1 (male) where prob_male >= threshold."""
    return (np.asarray(probs) >= threshold).astype(np.int64)


def binary_metrics(y: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Every metric in METRIC_NAMES for labels `y` and male probabilities `probs` at `threshold`."""
    y = np.asarray(y, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    pred = predict_labels(probs, threshold)
    both = len(np.unique(y)) == 2
    nan = float("nan")
    # no warnings filter: one-class data gets NaN before scikit-learn is asked, zero divisions are set explicitly
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, pred)) if both else nan,
        "roc_auc": float(skm.roc_auc_score(y, probs)) if both else nan,
        "pr_auc": float(skm.average_precision_score(y, probs)) if both else nan,
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "sensitivity": float(skm.recall_score(y, pred, pos_label=1, zero_division=np.nan)),
        "specificity": float(skm.recall_score(y, pred, pos_label=0, zero_division=np.nan)),
        "log_loss": float(skm.log_loss(y, probs, labels=[0, 1])) if both else nan,
        "brier": float(skm.brier_score_loss(y, probs, pos_label=1)),
        "ece": expected_calibration_error(y, probs),
    }


def confusion(y: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict[str, int]:
    """Confusion-matrix cells with male as the positive class."""
    tn, fp, fn, tp = skm.confusion_matrix(y, predict_labels(probs, threshold), labels=[0, 1]).ravel()
    return {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)}


def ece_bin_index(probs: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """Equal-width bin of each probability; 1.0 falls in the last bin."""
    return np.clip(np.floor(np.asarray(probs) * n_bins).astype(np.int64), 0, n_bins - 1)


def expected_calibration_error(y: np.ndarray, probs: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE of prob_male: sum over equal-width bins of (bin share) x |observed male rate - mean prob_male|.

    scikit-learn has no ECE; the bins are those of sklearn.calibration.calibration_curve(strategy="uniform").
    """
    y = np.asarray(y, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    bins = ece_bin_index(probs, n_bins)
    count = np.bincount(bins, minlength=n_bins)
    gap = np.abs(np.bincount(bins, weights=y, minlength=n_bins) - np.bincount(bins, weights=probs, minlength=n_bins))
    return float(gap.sum() / count.sum())


def majority_baseline(y: np.ndarray, source: str, majority: int | None = None) -> dict[str, object]:
    """Accuracy and balanced accuracy of always predicting one class: `majority` (1 = male) when given, e.g. the
    training data's majority class, otherwise the majority class of `y`; `source` names where it came from."""
    y = np.asarray(y, dtype=np.int64)
    if majority is None:
        majority = int(y.mean() >= 0.5)
    constant = np.full_like(y, majority)
    ba = float(skm.balanced_accuracy_score(y, constant)) if len(np.unique(y)) == 2 else float("nan")
    return {
        "majority_class": "male" if majority else "female",
        "majority_class_from": source,
        "accuracy": float(skm.accuracy_score(y, constant)),
        "balanced_accuracy": ba,
    }
