"""One prediction per subject: a regex on the file name names the subject; its images' prob_male is averaged."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from unifiedgender.errors import UserError

SUBJECT_FIELDS = ("subject", "n_images", "n_ok", "modality", "prob_male", "prob_female", "pred", "confidence", "status")


def compile_group_pattern(pattern: str) -> re.Pattern[str]:
    """Compile `--group-by`; an invalid regex is a UserError."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise UserError(f"--group-by '{pattern}': invalid regular expression ({exc}); e.g. '^(\\d+)__' ") from exc


def subject_of(pattern: re.Pattern[str], path: str) -> str | None:
    """The subject in the file name: the group named `subject`, else the first named group, else group 1,
    else the whole match; None when the name does not match."""
    match = pattern.search(os.path.basename(path))
    if match is None:
        return None
    names = list(pattern.groupindex)
    if "subject" in names:
        return match.group("subject")
    if names:
        return match.group(names[0])
    return match.group(1) if pattern.groups else match.group(0)


@dataclass
class _Subject:
    n_images: int = 0
    n_ok: int = 0
    prob_sum: float = 0.0
    modalities: set[str] = field(default_factory=set)


class SubjectGrouper:
    """Accumulates records per subject in constant memory per subject."""

    def __init__(self, pattern: str, threshold: float = 0.5) -> None:
        self.pattern = compile_group_pattern(pattern)
        self.threshold = threshold
        self.subjects: dict[str, _Subject] = {}
        self.unmatched = 0

    def add(self, record: dict[str, Any]) -> str | None:
        """Count one image record; returns its subject (None when the file name does not match)."""
        subject = subject_of(self.pattern, record["path"])
        if subject is None:
            self.unmatched += 1
            return None
        entry = self.subjects.setdefault(subject, _Subject())
        entry.n_images += 1
        if record["modality"]:
            entry.modalities.add(record["modality"])
        if record["status"] == "ok":
            entry.n_ok += 1
            entry.prob_sum += record["prob_male"]
        return subject

    def rows(self) -> list[dict[str, Any]]:
        """One row per subject (sorted by subject): mean prob_male over its readable images."""
        out = []
        for subject, entry in sorted(self.subjects.items()):
            row: dict[str, Any] = {"subject": subject, "n_images": entry.n_images, "n_ok": entry.n_ok,
                                   "modality": "+".join(sorted(entry.modalities))}
            if entry.n_ok:
                prob = entry.prob_sum / entry.n_ok
                male = prob >= self.threshold
                row.update(prob_male=prob, prob_female=1.0 - prob, pred="male" if male else "female",
                           confidence=prob if male else 1.0 - prob, status="ok")
            else:
                row.update(prob_male=None, prob_female=None, pred="", confidence=None, status="no readable image")
            out.append(row)
        return out
