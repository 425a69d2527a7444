"""The predictions table: one row per manifest row, every manifest column kept in its order, then `prob_male`
(NaN where the image gave no prediction), `pred` (male/female at the threshold, empty without a prediction) and
`status`, plus `pred_age_group` when a multitask model gave age groups.

The one constructor behind `ugn predict`/`ugn evaluate` on a manifest (inference.manifest_predictions) and the
trainer's val_predictions.csv; `ugn evaluate` reads such tables back.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

PROB, PRED, STATUS, PRED_AGE_GROUP = "prob_male", "pred", "status", "pred_age_group"


def pred_labels(prob_male: Sequence[float] | np.ndarray | pd.Series, threshold: float) -> np.ndarray:
    """'male' where prob_male >= threshold, 'female' below it, '' where it is missing (NaN)."""
    probs = np.asarray(prob_male, dtype=np.float64)
    return np.where(np.isnan(probs), "", np.where(probs >= threshold, "male", "female"))


def predictions_table(manifest: pd.DataFrame, prob_male: Sequence[float | None] | np.ndarray, status: Sequence[str],
                      threshold: float, age_groups: Sequence[str | None] | None = None) -> pd.DataFrame:
    """The table for `manifest`'s rows (in order): `prob_male` per row (None or NaN: no prediction), labelled at
    `threshold`; `age_groups` adds pred_age_group when any is given."""
    if not len(prob_male) == len(status) == len(manifest):
        raise ValueError(f"{len(manifest)} manifest rows but {len(prob_male)} probabilities and {len(status)} statuses")
    table = manifest.copy()
    table[PROB] = pd.array(list(prob_male), dtype="Float64").astype("float64")  # None -> NaN
    table[PRED] = pred_labels(table[PROB], threshold)
    table[STATUS] = list(status)
    if age_groups is not None and any(age_groups):
        table[PRED_AGE_GROUP] = list(age_groups)
    return table
