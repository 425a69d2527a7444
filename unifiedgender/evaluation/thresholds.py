"""Decision thresholds chosen on validation predictions: Youden's J or the equal error rate."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve

from unifiedgender.errors import UserError

THRESHOLD_METHODS = ("youden", "eer")


def select_threshold(y: np.ndarray, probs: np.ndarray, method: str = "youden", source: str = "validation") -> float:
    """Threshold on prob_male maximising Youden's J (TPR - FPR) or where FPR and FNR are closest (EER)."""
    if method not in THRESHOLD_METHODS:
        raise UserError(f"unknown threshold method '{method}'; use one of {', '.join(THRESHOLD_METHODS)}")
    y = np.asarray(y, dtype=np.int64)
    if len(np.unique(y)) < 2:
        raise UserError(f"{source}: needs both male and female rows to choose a threshold; use a validation set with both")
    fpr, tpr, thresholds = roc_curve(y, probs, drop_intermediate=False)
    finite = np.isfinite(thresholds)  # roc_curve's first threshold is +inf (predict nobody male)
    fpr, tpr, thresholds = fpr[finite], tpr[finite], thresholds[finite]
    if method == "youden":
        best = int(np.argmax(tpr - fpr))
    else:
        best = int(np.argmin(np.abs(fpr - (1 - tpr))))
    return float(thresholds[best])
