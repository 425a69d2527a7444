"""Threshold selection on validation predictions (Youden's J, EER) and its use on the evaluated data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score

from unifiedgender.errors import UserError
from unifiedgender.evaluation.assess import evaluate_predictions
from unifiedgender.decision import check_threshold
from unifiedgender.evaluation.thresholds import select_threshold

# males .5 .6 .7 .9, females .1 .2 .65
Y = np.array([1, 1, 1, 1, 0, 0, 0])
P = np.array([0.5, 0.6, 0.7, 0.9, 0.1, 0.2, 0.65])


def test_youden_by_hand():
    # J = TPR - FPR: at .7 -> 2/4 - 0; at .6 -> 3/4 - 1/3; at .5 -> 1 - 1/3 = 2/3 (the maximum)
    assert select_threshold(Y, P, "youden") == pytest.approx(0.5)


def test_equal_error_rate_by_hand():
    # |FPR - FNR|: at .65 -> |1/3 - 1/2|; at .6 -> |1/3 - 1/4| = 1/12 (the minimum); at .5 -> |1/3 - 0|
    assert select_threshold(Y, P, "eer") == pytest.approx(0.6)


def test_threshold_errors_name_the_fix():
    with pytest.raises(UserError, match="unknown threshold method 'f1'; use one of youden, eer"):
        select_threshold(Y, P, "f1")
    with pytest.raises(UserError, match="needs both male and female"):
        select_threshold(np.ones(3), np.array([0.2, 0.5, 0.9]))
    with pytest.raises(UserError, match=r"must be in \(0, 1\]"):
        check_threshold(1.5)


def frame(y: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "subject_id": [f"s{i}" for i in range(len(y))],
            "modality": "hand",
            "gender": np.where(y == 1, "male", "female"),
            "prob_male": probs,
            "status": "ok",
        }
    )


def test_threshold_from_validation_is_applied_to_the_evaluated_data():
    rng = np.random.default_rng(4)
    y_test = rng.integers(0, 2, 200)
    p_test = np.clip(rng.normal(0.55 + 0.25 * y_test, 0.15), 0, 1)  # biased towards male: 0.5 is not ideal
    report, _ = evaluate_predictions(frame(y_test, p_test), validation=frame(Y, P), threshold_method="eer", n_resamples=0)
    assert report["threshold"] == {"value": pytest.approx(0.6), "method": "eer", "chosen_on": "validation predictions"}
    expected = accuracy_score(y_test, (p_test >= 0.6).astype(int))
    assert report["image_level"]["metrics"]["accuracy"] == pytest.approx(expected)
    assert expected != pytest.approx(accuracy_score(y_test, (p_test >= 0.5).astype(int)))
    # per-group thresholds for the fairness analysis come from the validation table, and are not applied
    per_group = report["fairness"]["modality"]["per_group_thresholds"]
    assert per_group["chosen_on"] == "validation predictions" and per_group["applied"] is False
    assert per_group["thresholds"]["hand"] == pytest.approx(0.6)
