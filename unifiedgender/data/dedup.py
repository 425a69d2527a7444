"""Byte-identical images: found by content hash and tied together in the manifest's `dup_group` column.

Only files whose size is shared with another file are hashed, so a folder without duplicates costs one
`stat` per file. The split keeps every dup_group on one side.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd


@dataclass
class DuplicateReport:
    """Groups of identical files: all of them, and those that span subjects or genders."""

    groups: int = 0
    images: int = 0
    cross_subject: list[tuple[str, list[str], list[str]]] = field(default_factory=list)  # (group, subjects, genders)

    @property
    def conflicting_gender(self) -> list[tuple[str, list[str], list[str]]]:
        return [g for g in self.cross_subject if len(set(g[2])) > 1]


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (hashlib.file_digest needs Python 3.11)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def assign_dup_groups(df: pd.DataFrame) -> tuple[pd.DataFrame, DuplicateReport]:
    """Set `dup_group` (sha256 prefix) on every image whose exact bytes occur more than once; others stay blank."""
    paths = df["path"].tolist()
    by_size: dict[int, list[int]] = defaultdict(list)
    for position, path in enumerate(paths):
        by_size[os.path.getsize(path)].append(position)
    by_hash: dict[str, list[int]] = defaultdict(list)
    for positions in by_size.values():
        if len(positions) > 1:
            for position in positions:
                by_hash[sha256_file(paths[position])].append(position)

    out = df.copy()
    groups = pd.Series(pd.NA, index=out.index, dtype="object")
    report = DuplicateReport()
    for digest, positions in sorted(by_hash.items()):
        if len(positions) < 2:
            continue
        indices = out.index[positions]
        name = digest[:16]
        groups.loc[indices] = name
        report.groups += 1
        report.images += len(indices)
        members = out.loc[indices]
        subjects = sorted(members["subject_id"].astype(str).unique())
        if len(subjects) > 1:
            genders = [str(members.loc[members["subject_id"].astype(str) == s, "gender"].iloc[0]) for s in subjects]
            report.cross_subject.append((name, subjects, genders))
    out["dup_group"] = groups
    return out, report
