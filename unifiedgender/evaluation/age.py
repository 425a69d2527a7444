"""Age-group metrics of a multitask model on Adience groups: exact and one-off accuracy (the Adience convention).

Truth is the manifest's `age` in years mapped to its Adience group (`unifiedgender.data.ages`); the prediction is
the predictions table's `pred_age_group`. One-off counts a prediction in the true group or a neighbouring one
(Levi & Hassner 2015). Rows without a known age are left out and counted; the baseline always predicts the
evaluated data's most frequent group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from unifiedgender.data.ages import BUCKET_LABELS, age_buckets


def age_report(frame: pd.DataFrame) -> dict | None:
    """Exact and one-off accuracy with the majority-group baseline; None when the table has no age predictions."""
    if "pred_age_group" not in frame.columns or "age" not in frame.columns:
        return None
    truth = age_buckets(pd.to_numeric(frame["age"], errors="coerce").to_numpy(dtype=np.float64))
    pred = frame["pred_age_group"].map({label: i for i, label in enumerate(BUCKET_LABELS)}).to_numpy(dtype=np.float64)
    known = (truth >= 0) & ~np.isnan(pred)
    report: dict = {"groups": list(BUCKET_LABELS), "n": int(known.sum()), "n_without_age": int((~known).sum())}
    if not known.any():
        return report
    t, p = truth[known], pred[known].astype(np.int64)
    majority = int(np.bincount(t, minlength=len(BUCKET_LABELS)).argmax())
    report.update(
        n_subjects=int(frame.loc[known, "subject_id"].nunique()),
        exact_accuracy=float(np.mean(t == p)),
        one_off_accuracy=float(np.mean(np.abs(t - p) <= 1)),
        baseline={"group": BUCKET_LABELS[majority], "exact_accuracy": float(np.mean(t == majority)),
                  "one_off_accuracy": float(np.mean(np.abs(t - majority) <= 1))},
        confusion=pd.crosstab(pd.Series(t, name="true"), pd.Series(p, name="pred"))
        .reindex(index=range(len(BUCKET_LABELS)), columns=range(len(BUCKET_LABELS)), fill_value=0).to_numpy().tolist(),
    )
    return report
