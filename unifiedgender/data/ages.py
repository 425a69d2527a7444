"""The Adience age groups: the eight buckets, their labels, and the mapping of an age in years to a bucket.

One home for the buckets used by the Adience importer, the multitask model's age head, its loss and the age
metrics. Ages between two buckets go to the nearer one; a tie (the exact middle of a gap) goes to the younger.
"""

from __future__ import annotations

import math

import numpy as np

from unifiedgender.errors import UserError

ADIENCE_AGE_BUCKETS = ((0, 2), (4, 6), (8, 12), (15, 20), (25, 32), (38, 43), (48, 53), (60, 100))
BUCKET_LABELS = tuple(f"{lo}-{hi}" for lo, hi in ADIENCE_AGE_BUCKETS)
# Boundaries between neighbouring buckets: the middle of each gap (2|4 -> 3, 6|8 -> 7, ...).
BUCKET_EDGES = tuple((hi + lo) / 2 for (_, hi), (lo, _) in zip(ADIENCE_AGE_BUCKETS, ADIENCE_AGE_BUCKETS[1:]))


def age_to_bucket(age: float) -> int:
    """Index of the Adience bucket containing `age` years (ages between buckets go to the nearest one)."""
    if math.isnan(age) or age < 0:
        raise UserError(f"age {age} is not a valid age in years; fix the age column")
    return int(np.searchsorted(BUCKET_EDGES, age, side="left"))


def age_buckets(ages: np.ndarray) -> np.ndarray:
    """Bucket index per age in years; -1 where the age is unknown (NaN). Same rule as `age_to_bucket`."""
    ages = np.asarray(ages, dtype=np.float64)
    out = np.searchsorted(BUCKET_EDGES, ages, side="left").astype(np.int64)
    out[np.isnan(ages)] = -1
    return out
