"""Age groups, in one place: the Adience buckets of multitask models, and the reporting groups of summaries.

The Adience buckets (eight, with gaps between them) are used by the Adience importer, the multitask model's
age head, its loss and the age metrics. Ages between two buckets go to the nearer one; a tie (the exact middle
of a gap) goes to the younger.

The reporting groups are contiguous ranges from ascending edges (REPORT_AGE_EDGES, or `--age-buckets`): the
"By age" table of `ugn data info` and the age groups of the fairness breakdown of `ugn evaluate`.
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


REPORT_AGE_EDGES = (0, 18, 30, 45, 60)  # -> 0-17, 18-29, 30-44, 45-59, 60+


def report_age_group_names(edges: tuple[float, ...]) -> list[str]:
    """Names of the groups that ascending `edges` make: 0,18,30 -> "0-17", "18-29", "30+"."""
    return [_group_name(edges[i], edges[i + 1] if i + 1 < len(edges) else None) for i in range(len(edges))]


def report_age_groups(ages: np.ndarray, edges: tuple[float, ...] = REPORT_AGE_EDGES) -> np.ndarray:
    """The reporting group name of each age in years; None below the first edge or where the age is unknown (NaN)."""
    ages = np.asarray(ages, dtype=np.float64)
    names = np.array(report_age_group_names(edges) + [None], dtype=object)
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), ages, side="right") - 1
    index[(index < 0) | np.isnan(ages)] = len(edges)
    return names[index]


def parse_report_age_edges(text: str) -> tuple[float, ...]:
    """"0,18,30,45,60" -> (0, 18, 30, 45, 60); edges must be numbers in strictly ascending order."""
    try:
        edges = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise UserError(f"--age-buckets '{text}': not a comma-separated list of numbers, e.g. 0,18,30,45,60") from exc
    if not edges or any(b <= a for a, b in zip(edges, edges[1:])):
        raise UserError(f"--age-buckets '{text}': edges must be ascending, e.g. 0,18,30,45,60")
    return edges


def _group_name(low: float, high: float | None) -> str:
    def fmt(v: float) -> str:
        return f"{v:g}"

    if high is None:
        return f"{fmt(low)}+"
    if float(low).is_integer() and float(high).is_integer():
        return f"{fmt(low)}-{fmt(high - 1)}"
    return f"{fmt(low)}-<{fmt(high)}"
