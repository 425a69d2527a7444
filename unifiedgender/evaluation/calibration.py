"""Temperature scaling fitted on validation logits, and the Decision a trained model ships with.

Temperature scaling (Guo et al., 2017) divides the male logit by one number T > 0 fitted to minimise the
log loss on validation data. It changes probabilities, never the ranking and never the decision at 0.5.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from unifiedgender.decision import THRESHOLD_POLICIES, Decision, calibrated_probs, check_policy
from unifiedgender.evaluation.metrics import expected_calibration_error
from unifiedgender.evaluation.thresholds import select_threshold

SCALE_BOUNDS = (1e-2, 1e2)  # 1/T searched in this range (T from 0.01 to 100)
SCORE_POINTS = 100  # validation scores kept as at most this many quantiles for the shift check


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean binary log loss of sigmoid(logits / temperature)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    return float(np.mean(np.logaddexp(0.0, z) - np.asarray(labels, dtype=np.float64) * z))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T minimising the log loss of sigmoid(logits / T); 1.0 when the labels hold one class only.

    The loss is convex in 1/T, so a bounded scalar search finds the optimum.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(np.unique(labels)) < 2 or not np.all(np.isfinite(logits)):
        return 1.0
    result = minimize_scalar(lambda scale: nll(logits, labels, 1.0 / scale), bounds=SCALE_BOUNDS, method="bounded",
                             options={"xatol": 1e-6})
    return float(1.0 / result.x)


def policy_thresholds(labels: np.ndarray, probs: np.ndarray, source: str = "validation") -> dict[str, float]:
    """The threshold of every policy in THRESHOLD_POLICIES on these (calibrated) probabilities."""
    return {policy: 0.5 if policy == "0.5" else select_threshold(labels, probs, policy, source) for policy in THRESHOLD_POLICIES}


def score_summary(probs: np.ndarray, points: int = SCORE_POINTS) -> dict[str, object]:
    """{"n", "quantiles"}: the sorted scores when there are at most `points`, else `points` evenly spaced
    quantiles (levels (i + 0.5) / points), a stand-in sample whose distribution matches to within 1/points."""
    probs = np.sort(np.asarray(probs, dtype=np.float64))
    sample = np.quantile(probs, (np.arange(points) + 0.5) / points) if len(probs) > points else probs
    return {"n": len(probs), "quantiles": sample.round(6).tolist()}


def fit_decision(logits: np.ndarray, labels: np.ndarray, chosen_on: str, policy: str) -> Decision:
    """Temperature, every policy's threshold, ECE before/after and the score summary from validation logits."""
    check_policy(policy)
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    temperature = fit_temperature(logits, labels)
    probs = calibrated_probs(logits, temperature)
    ece = {"uncalibrated": expected_calibration_error(labels, calibrated_probs(logits, 1.0)),
           "calibrated": expected_calibration_error(labels, probs)}
    return Decision(temperature, policy, policy_thresholds(labels, probs, chosen_on), chosen_on, ece, score_summary(probs))
