"""Subject-level bootstrap confidence intervals, vectorised over resamples.

A resample draws subjects with replacement (as many as there are); every image of a drawn subject enters
with weight = the number of times its subject was drawn. Each resample's metrics are therefore exactly
scikit-learn's metrics with that `sample_weight` (tests check this), but they are computed for all resamples
at once from per-subject counts (threshold metrics, log loss, Brier, ECE) and from one sort of the scores
(ROC-AUC, PR-AUC), so 1000 resamples of 5000 images take well under a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from unifiedgender.evaluation.metrics import ECE_BINS, METRIC_NAMES, ece_bin_index, predict_labels

CI_LEVEL = 0.95
CHUNK_CELLS = 2_000_000  # resample x image weights held at once (about 16 MB per array)
BOOTSTRAP_METRICS = (*METRIC_NAMES, "tpr", "fpr", "selection_rate")


@dataclass
class BootstrapResult:
    """Per-resample metric values (NaN where undefined) and their percentile intervals."""

    replicates: dict[str, np.ndarray]
    n_resamples: int
    n_subjects: int

    def interval(self, name: str, level: float = CI_LEVEL) -> tuple[float, float]:
        """Percentile interval over the resamples where the metric is defined; (nan, nan) if none."""
        values = self.replicates[name]
        values = values[~np.isnan(values)]
        if values.size == 0:
            return float("nan"), float("nan")
        tail = (1 - level) / 2 * 100
        low, high = np.percentile(values, [tail, 100 - tail])
        return float(low), float(high)

    def intervals(self, level: float = CI_LEVEL) -> dict[str, tuple[float, float]]:
        return {name: self.interval(name, level) for name in self.replicates}


def resample_chunks(n_subjects: int, n_resamples: int, seed: int, n_images: int = 0) -> Iterator[np.ndarray]:
    """Blocks of [rows, n_subjects] draw counts (times each subject is drawn), resample after resample.

    Blocks keep about CHUNK_CELLS weights in memory whatever the data size; the stream depends on the seed
    and the sizes only.
    """
    rng = np.random.default_rng(seed)
    rows = max(1, CHUNK_CELLS // max(n_subjects, n_images, 1))
    for start in range(0, n_resamples, rows):
        size = min(rows, n_resamples - start)
        draws = rng.integers(0, n_subjects, size=(size, n_subjects))
        offsets = (np.arange(size) * n_subjects)[:, None]
        yield np.bincount((draws + offsets).ravel(), minlength=size * n_subjects).reshape(size, n_subjects)


def resample_counts(n_subjects: int, n_resamples: int, seed: int, n_images: int = 0) -> np.ndarray:
    """All draw counts [n_resamples, n_subjects] at once (what subject_bootstrap uses, block by block)."""
    return np.vstack(list(resample_chunks(n_subjects, n_resamples, seed, n_images)))


def subject_bootstrap(
    y: np.ndarray,
    probs: np.ndarray,
    subjects: np.ndarray,
    threshold: float = 0.5,
    n_resamples: int = 1000,
    seed: int = 0,
) -> BootstrapResult:
    """Bootstrap every metric in BOOTSTRAP_METRICS by resampling subjects (seeded, reproducible)."""
    y = np.asarray(y, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    _, subject_index = np.unique(np.asarray(subjects).astype(str), return_inverse=True)
    n_subjects = int(subject_index.max()) + 1
    blocks = [
        weighted_metrics(y, probs, subject_index, counts.astype(np.float64), threshold)
        for counts in resample_chunks(n_subjects, n_resamples, seed, len(y))
    ]
    replicates = {name: np.concatenate([b[name] for b in blocks]) for name in BOOTSTRAP_METRICS} if blocks else {
        name: np.empty(0) for name in BOOTSTRAP_METRICS
    }
    return BootstrapResult(replicates=replicates, n_resamples=n_resamples, n_subjects=n_subjects)


def weighted_metrics(
    y: np.ndarray, probs: np.ndarray, subject_index: np.ndarray, counts: np.ndarray, threshold: float
) -> dict[str, np.ndarray]:
    """Metrics for each row of `counts` (subject weights), images weighted by their subject's weight."""
    n_subjects = counts.shape[1]
    pred = predict_labels(probs, threshold)
    eps = np.finfo(np.float64).eps
    clipped = np.clip(probs, eps, 1 - eps)
    image_loss = -(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))
    bins = ece_bin_index(probs)
    columns = [
        y * pred,  # tp
        (1 - y) * pred,  # fp
        (1 - y) * (1 - pred),  # tn
        y * (1 - pred),  # fn
        image_loss,
        (probs - y) ** 2,
    ]
    for b in range(ECE_BINS):
        in_bin = bins == b
        columns += [in_bin * y, in_bin * probs]
    per_image = np.stack([np.asarray(c, dtype=np.float64) for c in columns], axis=1)
    per_subject = np.zeros((n_subjects, per_image.shape[1]))
    np.add.at(per_subject, subject_index, per_image)
    totals = counts @ per_subject  # [B, k]
    tp, fp, tn, fn, loss, sq = (totals[:, i] for i in range(6))
    pos, neg = tp + fn, fp + tn
    n = pos + neg
    bin_y, bin_p = totals[:, 6::2], totals[:, 7::2]
    with np.errstate(divide="ignore", invalid="ignore"):
        sensitivity = np.where(pos > 0, tp / pos, np.nan)
        specificity = np.where(neg > 0, tn / neg, np.nan)
        both = (pos > 0) & (neg > 0)
        denominator = 2 * tp + fp + fn
        auc, ap = _ranking_metrics(y, probs, subject_index, counts)
        return {
            "accuracy": (tp + tn) / n,
            "balanced_accuracy": np.where(both, (sensitivity + specificity) / 2, np.nan),
            "roc_auc": np.where(both, auc, np.nan),
            "pr_auc": np.where(both, ap, np.nan),
            "f1": np.where(denominator > 0, 2 * tp / denominator, 0.0),
            "sensitivity": sensitivity,
            "specificity": specificity,
            "log_loss": np.where(both, loss / n, np.nan),
            "brier": sq / n,
            "ece": np.abs(bin_y - bin_p).sum(axis=1) / n,
            "tpr": sensitivity,
            "fpr": 1 - specificity,
            "selection_rate": (tp + fp) / n,
        }


def _ranking_metrics(
    y: np.ndarray, probs: np.ndarray, subject_index: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted ROC-AUC (ties count one half) and average precision (scikit-learn's step definition) per row.

    The male and female weight at each distinct score is `counts @ M` with M a sparse [subjects, scores]
    matrix of image counts, so no [resamples, images] array is ever built.
    """
    distinct, score_index = np.unique(probs, return_inverse=True)  # ascending distinct scores
    shape = (counts.shape[1], len(distinct))
    male = sparse.csr_matrix((y.astype(np.float64), (subject_index, score_index)), shape=shape)
    female = sparse.csr_matrix(((1 - y).astype(np.float64), (subject_index, score_index)), shape=shape)
    pos = np.asarray(counts @ male)  # [B, U] male weight at each distinct score
    neg = np.asarray(counts @ female)
    total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    auc = (pos * (neg_below + 0.5 * neg)).sum(axis=1) / (total_pos * total_neg)
    # precision and recall at each threshold, scanning distinct scores from high to low
    tp_at = np.cumsum(pos[:, ::-1], axis=1)
    fp_at = np.cumsum(neg[:, ::-1], axis=1)
    precision = np.nan_to_num(tp_at / (tp_at + fp_at))
    ap = (pos[:, ::-1] * precision).sum(axis=1) / total_pos
    return auc, ap


def gap_intervals(
    y: np.ndarray,
    probs: np.ndarray,
    subjects: np.ndarray,
    groups: np.ndarray,
    pairs: dict[str, tuple[str, str]],
    threshold: float = 0.5,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = CI_LEVEL,
) -> dict[str, tuple[float, float]]:
    """95% intervals of metric(group A) - metric(group B) for each `pairs[metric] = (A, B)`.

    Subjects are resampled jointly over all groups (one draw per resample), so each replicate compares the
    two groups on the same resampled population; resamples where either side is undefined are left out.
    """
    y = np.asarray(y, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    groups = np.asarray(groups).astype(str)
    _, subject_index = np.unique(np.asarray(subjects).astype(str), return_inverse=True)
    n_subjects = int(subject_index.max()) + 1 if len(y) else 0
    needed = sorted({g for pair in pairs.values() for g in pair})
    masks = {g: groups == g for g in needed}
    gaps: dict[str, list[np.ndarray]] = {name: [] for name in pairs}
    for counts in resample_chunks(n_subjects, n_resamples, seed, len(y)):
        weights = counts.astype(np.float64)
        per_group = {g: weighted_metrics(y[m], probs[m], subject_index[m], weights, threshold) for g, m in masks.items()}
        for name, (a, b) in pairs.items():
            gaps[name].append(per_group[a][name] - per_group[b][name])
    replicates = {name: np.concatenate(blocks) if blocks else np.empty(0) for name, blocks in gaps.items()}
    result = BootstrapResult(replicates=replicates, n_resamples=n_resamples, n_subjects=n_subjects)
    return {name: result.interval(name, level) for name in pairs}
