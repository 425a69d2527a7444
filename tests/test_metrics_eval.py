"""Point metrics against scikit-learn and by hand; the subject bootstrap against sklearn with sample weights."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from unifiedgender.evaluation.bootstrap import resample_counts, subject_bootstrap
from unifiedgender.evaluation.metrics import (
    METRIC_NAMES,
    binary_metrics,
    confusion,
    expected_calibration_error,
    majority_baseline,
)


def synthetic(n_subjects: int = 120, seed: int = 3, ties: bool = True):
    """Labels, male probabilities (rounded, so there are ties) and subject ids with 1-6 images each."""
    rng = np.random.default_rng(seed)
    per_subject = rng.integers(1, 7, n_subjects)
    subjects = np.repeat(np.arange(n_subjects), per_subject)
    y = (subjects % 2).astype(np.int64)
    probs = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    return y, (np.round(probs, 2) if ties else probs), subjects.astype(str)


def test_point_metrics_equal_sklearn_computed_independently():
    y, probs, _ = synthetic()
    threshold = 0.45
    pred = (probs >= threshold).astype(int)
    got = binary_metrics(y, probs, threshold)
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "roc_auc": skm.roc_auc_score(y, probs),
        "pr_auc": skm.average_precision_score(y, probs),
        "f1": skm.f1_score(y, pred),
        "sensitivity": skm.recall_score(y, pred),
        "specificity": skm.recall_score(y, pred, pos_label=0),
        "log_loss": skm.log_loss(y, probs),
        "brier": skm.brier_score_loss(y, probs),
    }
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    assert set(got) == set(METRIC_NAMES)


def test_metrics_by_hand_on_a_small_example():
    # truth:  M M M F F F F ;  probs: .9 .6 .3 .7 .2 .1 .4  at 0.5 -> tp 2, fn 1, fp 1, tn 3
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    probs = np.array([0.9, 0.6, 0.3, 0.7, 0.2, 0.1, 0.4])
    got = binary_metrics(y, probs)
    assert confusion(y, probs) == {"tp": 2, "fn": 1, "fp": 1, "tn": 3}
    assert got["accuracy"] == pytest.approx(5 / 7)
    assert got["sensitivity"] == pytest.approx(2 / 3)
    assert got["specificity"] == pytest.approx(3 / 4)
    assert got["balanced_accuracy"] == pytest.approx((2 / 3 + 3 / 4) / 2)
    assert got["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    # AUC: of 12 male/female pairs the male scores higher in 9 (0.6 loses to 0.7; 0.3 loses to 0.7 and 0.4)
    assert got["roc_auc"] == pytest.approx(9 / 12)
    assert got["brier"] == pytest.approx(np.mean((probs - y) ** 2))


def test_ece_by_hand():
    # bins of width 0.1: {0.15, 0.15} observed 0 males, mean 0.15 -> gap 0.15 x 2/4; {0.85, 0.85} observed 1 male of 2,
    # mean 0.85 -> gap 0.35 x 2/4; ECE = 0.075 + 0.175 = 0.25
    y = np.array([0, 0, 1, 0])
    probs = np.array([0.15, 0.15, 0.85, 0.85])
    assert expected_calibration_error(y, probs) == pytest.approx(0.25)
    assert expected_calibration_error(np.array([1]), np.array([1.0])) == pytest.approx(0.0)


def test_one_class_metrics_are_nan_not_misleading():
    got = binary_metrics(np.array([1, 1, 1]), np.array([0.9, 0.2, 0.7]))
    assert got["accuracy"] == pytest.approx(2 / 3)
    for name in ("balanced_accuracy", "roc_auc", "pr_auc", "log_loss"):
        assert np.isnan(got[name]), name
    assert np.isnan(got["specificity"])


def test_majority_baseline_names_its_class_and_source():
    base = majority_baseline(np.array([0, 0, 0, 1]), source="evaluation data")
    assert base == {
        "majority_class": "female",
        "majority_class_from": "evaluation data",
        "accuracy": 0.75,
        "balanced_accuracy": 0.5,
    }
    from_training = majority_baseline(np.array([0, 0, 0, 1]), source="training data (train.csv)", majority=1)
    assert (from_training["majority_class"], from_training["accuracy"]) == ("male", 0.25)


def test_each_bootstrap_replicate_equals_sklearn_on_the_resampled_data():
    y, probs, subjects = synthetic()
    threshold = 0.5
    result = subject_bootstrap(y, probs, subjects, threshold, n_resamples=20, seed=11)
    _, subject_index = np.unique(subjects, return_inverse=True)
    counts = resample_counts(subject_index.max() + 1, 20, 11, n_images=len(y))
    for b in (0, 7, 19):
        weights = counts[b, subject_index]
        # a subject drawn k times contributes each of its images k times
        expanded = binary_metrics(np.repeat(y, weights), np.repeat(probs, weights), threshold)
        for name in METRIC_NAMES:
            assert result.replicates[name][b] == pytest.approx(expanded[name], abs=1e-9), (name, b)
        assert result.replicates["roc_auc"][b] == pytest.approx(skm.roc_auc_score(y, probs, sample_weight=weights))
        assert result.replicates["pr_auc"][b] == pytest.approx(skm.average_precision_score(y, probs, sample_weight=weights))


def test_bootstrap_works_in_blocks_of_resamples(monkeypatch):
    from unifiedgender.evaluation import bootstrap

    y, probs, subjects = synthetic()
    whole = subject_bootstrap(y, probs, subjects, n_resamples=30, seed=2)
    monkeypatch.setattr(bootstrap, "CHUNK_CELLS", 7 * len(y))  # blocks of 7 resamples: 7 + 7 + 7 + 7 + 2
    blocks = subject_bootstrap(y, probs, subjects, n_resamples=30, seed=2)
    assert blocks.replicates["roc_auc"].shape == (30,)
    counts = bootstrap.resample_counts(len(np.unique(subjects)), 30, 2, n_images=len(y))
    _, subject_index = np.unique(subjects, return_inverse=True)
    weights = counts[29, subject_index]
    assert blocks.replicates["roc_auc"][29] == pytest.approx(skm.roc_auc_score(y, probs, sample_weight=weights))
    assert np.isfinite(whole.replicates["accuracy"]).all()


def test_bootstrap_is_seeded_and_reproducible():
    y, probs, subjects = synthetic()
    first = subject_bootstrap(y, probs, subjects, n_resamples=200, seed=5)
    again = subject_bootstrap(y, probs, subjects, n_resamples=200, seed=5)
    other = subject_bootstrap(y, probs, subjects, n_resamples=200, seed=6)
    assert first.intervals() == again.intervals()
    np.testing.assert_array_equal(first.replicates["roc_auc"], again.replicates["roc_auc"])
    assert first.interval("accuracy") != other.interval("accuracy")
    # the same subjects in another row order give the same resamples
    order = np.random.default_rng(0).permutation(len(y))
    shuffled = subject_bootstrap(y[order], probs[order], subjects[order], n_resamples=200, seed=5)
    assert shuffled.interval("balanced_accuracy") == pytest.approx(first.interval("balanced_accuracy"))


def test_resampling_subjects_gives_wider_intervals_than_resampling_images():
    # 40 subjects x 25 identical-outcome images: the real sample size is 40, not 1000
    rng = np.random.default_rng(2)
    n_subjects, per = 40, 25
    subjects = np.repeat(np.arange(n_subjects), per).astype(str)
    y = np.repeat(np.arange(n_subjects) % 2, per)
    subject_correct = rng.random(n_subjects) < 0.7
    probs = np.where(np.repeat(subject_correct, per) == (y == 1), 0.8, 0.2)
    by_subject = subject_bootstrap(y, probs, subjects, n_resamples=1000, seed=0)
    by_image = subject_bootstrap(y, probs, np.arange(len(y)).astype(str), n_resamples=1000, seed=0)
    for name in ("accuracy", "balanced_accuracy"):
        subject_width = np.subtract(*by_subject.interval(name)[::-1])
        image_width = np.subtract(*by_image.interval(name)[::-1])
        assert subject_width > 3 * image_width, name
        low, high = by_subject.interval(name)
        assert low < binary_metrics(y, probs)[name] < high


def test_bootstrap_reports_nan_where_undefined_and_ignores_it_in_intervals():
    # one male subject among many females: some resamples hold no male at all
    y = np.array([1] + [0] * 9)
    probs = np.linspace(0.1, 0.9, 10)
    result = subject_bootstrap(y, probs, np.arange(10).astype(str), n_resamples=300, seed=1)
    assert np.isnan(result.replicates["roc_auc"]).any()
    low, high = result.interval("roc_auc")
    assert 0 <= low <= high <= 1


@pytest.mark.parametrize(
    ("y", "probs"),
    [
        ([1, 1, 1, 1], [0.2, 0.7, 0.9, 0.4]),  # one class
        ([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4]),  # nobody predicted male
        ([0, 1, 0, 1], [1.0, 0.0, 1.0, 0.0]),  # certain and always wrong
        ([1, 0], [0.7, 0.7]),  # two images, one per class and group
        ([1], [0.7]),  # one image: fairlearn squeezed the group array to no dimension and raised ValueError
    ],
)
def test_edge_cases_give_nan_or_zero_without_any_warning(y, probs):
    """The undefined cases are handled before scikit-learn is asked: no warning needs silencing."""
    import warnings

    import pandas as pd

    from unifiedgender.evaluation.fairness import attribute_report
    from unifiedgender.evaluation.table import prepare_table

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        binary_metrics(np.array(y), np.array(probs), 0.5)
        majority_baseline(np.array(y), "evaluation data")
        frame = pd.DataFrame({"subject_id": [f"s{i}" for i in range(len(y))], "modality": "hand",
                              "gender": ["male" if v else "female" for v in y], "prob_male": probs,
                              "race": [("a", "b")[i % 2] for i in range(len(y))]})
        table = prepare_table(frame)
        for attribute in table.group_attributes():
            attribute_report(table, attribute, 0.5, 20, 0)


def test_a_warning_raised_inside_a_metric_reaches_the_caller(monkeypatch):
    """Warnings are no longer switched off wholesale around the metrics: a library's warning stays visible."""
    import warnings

    from unifiedgender.evaluation import metrics

    brier = skm.brier_score_loss

    def brier_with_notice(*args, **kwargs):
        warnings.warn("brier_score_loss will change", FutureWarning, stacklevel=2)
        return brier(*args, **kwargs)

    monkeypatch.setattr(metrics.skm, "brier_score_loss", brier_with_notice)
    y, probs, _ = synthetic(20)
    with pytest.warns(FutureWarning, match="brier_score_loss will change"):
        binary_metrics(y, probs, 0.5)
