"""Deterministic subsample of a ugn manifest (stdlib only): at most N images per subject, at most M subjects.

Usage: cap_manifest.py OUT.csv IN.csv [IN2.csv ...] [--per-subject N] [--max-subjects M] [--seed S]

Several inputs are concatenated (union of columns; e.g. hands + faces for a unified model). Subjects are
ranked by a seeded SHA-256 of their id (so the choice does not depend on row order) and the first M are
kept; within a subject the images are ranked the same way by path and the first N are kept. Paths are
written absolute (relative ones are resolved against their input's folder).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import sys
from collections import defaultdict


def rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dst")
    parser.add_argument("src", nargs="+")
    parser.add_argument("--per-subject", type=int, default=0, help="0 = no cap")
    parser.add_argument("--max-subjects", type=int, default=0, help="0 = no cap")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    fields: list[str] = []
    rows: list[dict] = []
    for src in args.src:
        with open(src, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            names = reader.fieldnames or []
            if "subject_id" not in names or "path" not in names:
                sys.exit(f"cap_manifest: {src} has no subject_id/path column: is it a ugn manifest?")
            fields += [n for n in names if n not in fields]
            base = os.path.dirname(os.path.abspath(src))
            for row in reader:
                row["path"] = os.path.normpath(os.path.join(base, row["path"]))
                rows.append(row)
    by_subject: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_subject[row["subject_id"]].append(row)
    subjects = sorted(by_subject, key=lambda s: rank(args.seed, s))
    if args.max_subjects:
        subjects = subjects[: args.max_subjects]
    kept = []
    for subject in subjects:
        images = sorted(by_subject[subject], key=lambda r: rank(args.seed, r["path"]))
        kept.extend(images[: args.per_subject] if args.per_subject else images)
    kept.sort(key=lambda r: r["path"])
    os.makedirs(os.path.dirname(os.path.abspath(args.dst)), exist_ok=True)
    tmp = args.dst + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(kept)
    os.replace(tmp, args.dst)
    print(f"cap_manifest: {len(kept)} of {len(rows)} images, {len(subjects)} of {len(by_subject)} subjects -> {args.dst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
