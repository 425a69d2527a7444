"""Deterministic subsample of manifests: at most N images per subject, at most M subjects.

Subjects are ranked by a seeded SHA-256 of their id and the first M kept; within a subject, images are ranked
the same way by their path relative to the common folder of all images and the first N kept. Neither the row
order nor where the dataset lives changes the choice, so the same seed gives the same subset on any machine.
"""

from __future__ import annotations

import hashlib
import os

import pandas as pd

from unifiedgender.errors import UserError


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def subset_manifest(df: pd.DataFrame, per_subject: int = 0, max_subjects: int = 0, seed: int = 0) -> pd.DataFrame:
    """Rows kept (0 = no cap), sorted by path; `df` holds absolute paths, as from read_manifest."""
    if per_subject < 0 or max_subjects < 0:
        raise UserError(f"--per-subject and --max-subjects must be >= 0 (got {per_subject}, {max_subjects}); 0 = no cap")
    if df.empty:
        return df.copy()
    root = os.path.commonpath([os.path.dirname(p) for p in df["path"]])
    keys = pd.Series([_rank(seed, os.path.relpath(p, root).replace(os.sep, "/")) for p in df["path"]], index=df.index)
    subjects = sorted(df["subject_id"].unique(), key=lambda s: _rank(seed, str(s)))
    if max_subjects:
        subjects = subjects[:max_subjects]
    kept = df[df["subject_id"].isin(set(subjects))].assign(_key=keys)
    kept = kept.sort_values(["subject_id", "_key"], kind="stable")
    if per_subject:
        kept = kept.groupby("subject_id", sort=False).head(per_subject)
    return kept.drop(columns="_key").sort_values("path", kind="stable").reset_index(drop=True)


def concat_manifests(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Union of columns; a subject id found in two inputs with different genders is refused."""
    df = pd.concat(frames, ignore_index=True, sort=False)
    genders = df.groupby("subject_id")["gender"].nunique()
    clash = genders[genders > 1]
    if not clash.empty:
        raise UserError(
            f"subject_id '{clash.index[0]}' has both genders across the inputs; "
            "subject ids must be unique per person (prefix them per dataset)"
        )
    return df
