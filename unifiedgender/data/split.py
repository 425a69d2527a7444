"""Subject-level, stratified, deterministic train/val[/test] split of a manifest.

Guarantees (tested with hypothesis):
- no subject and no dup_group on two sides: subjects that share a dup_group form one unit (union-find),
  and units are assigned whole;
- stratified: units are grouped by gender (and, when the manifest mixes modalities, by the modalities the
  unit has); in every stratum each split gets floor or ceil of ratio x units, i.e. within one unit;
- deterministic: the result depends only on the set of subjects, their rows and the seed (not on row order).
"""

from __future__ import annotations

import math
import os
import random
from collections import defaultdict
from pathlib import Path

import pandas as pd

from unifiedgender.data.manifest import GENDERS, check_unique_files, write_manifest
from unifiedgender.errors import UserError

SPLIT_NAMES = {2: ("train", "val"), 3: ("train", "val", "test")}


def parse_ratios(text: str) -> tuple[float, ...]:
    """'0.8,0.2' or '0.7,0.15,0.15' -> floats; UserError unless 2 or 3 positive values summing to 1."""
    try:
        ratios = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise UserError(f"--ratios '{text}': use comma-separated numbers such as 0.8,0.2 or 0.7,0.15,0.15") from None
    if len(ratios) not in SPLIT_NAMES or any(not r > 0 for r in ratios):
        raise UserError(f"--ratios '{text}': give 2 (train,val) or 3 (train,val,test) positive numbers")
    if not math.isclose(sum(ratios), 1.0, abs_tol=1e-6):
        raise UserError(f"--ratios '{text}': the ratios sum to {sum(ratios):g}; they must sum to 1")
    return ratios


def split_units(df: pd.DataFrame) -> dict[str, str]:
    """subject_id -> unit id (the smallest subject id of its unit): subjects sharing a dup_group are one unit."""
    parent: dict[str, str] = {s: s for s in df["subject_id"].astype(str)}

    def find(s: str) -> str:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    if "dup_group" in df.columns:
        members: dict[str, set[str]] = defaultdict(set)
        for subject, group in zip(df["subject_id"].astype(str), df["dup_group"]):
            if not pd.isna(group):
                members[str(group)].add(subject)
        for subjects in members.values():
            ordered = sorted(subjects)
            for other in ordered[1:]:
                a, b = find(ordered[0]), find(other)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return {s: find(s) for s in parent}


def assign_splits(df: pd.DataFrame, ratios: tuple[float, ...], seed: int) -> dict[str, str]:
    """subject_id -> split name, stratified by gender (and modality when mixed) over dup-linked units."""
    names = SPLIT_NAMES[len(ratios)]
    unit_of = split_units(df)
    mixed_modality = df["modality"].nunique() > 1
    genders: dict[str, set[str]] = defaultdict(set)
    modalities: dict[str, set[str]] = defaultdict(set)
    for subject, gender, modality in zip(df["subject_id"].astype(str), df["gender"], df["modality"]):
        unit = unit_of[subject]
        genders[unit].add(str(gender))
        modalities[unit].add(str(modality) if mixed_modality else "")
    strata: dict[tuple[str, str], list[str]] = defaultdict(list)
    for unit in sorted(genders):
        strata[("+".join(sorted(genders[unit])), "+".join(sorted(modalities[unit])))].append(unit)

    rng = random.Random(seed)
    expected = [0.0] * len(names)  # running sums over strata, to spread rounding fairly across splits
    assigned = [0] * len(names)
    unit_split: dict[str, str] = {}
    for key in sorted(strata):
        units = sorted(strata[key])
        rng.shuffle(units)
        counts = _allocate(len(units), ratios, expected, assigned)
        start = 0
        for name, count in zip(names, counts):
            for unit in units[start:start + count]:
                unit_split[unit] = name
            start += count
    return {subject: unit_split[unit] for subject, unit in unit_of.items()}


def split_manifest(df: pd.DataFrame, ratios: tuple[float, ...], seed: int) -> dict[str, pd.DataFrame]:
    """Split a validated manifest by subject; returns {'train': ..., 'val': ...[, 'test': ...]} with a `split` column.

    A `split` column already present (a published split) is kept as `published_split`.
    """
    if len(ratios) not in SPLIT_NAMES:
        raise UserError(f"ratios {ratios}: give 2 (train,val) or 3 (train,val,test) values")
    if df.empty:
        raise UserError("the manifest has no rows to split")
    check_unique_files(df["path"], df.attrs.get("source", "manifest"))
    names = SPLIT_NAMES[len(ratios)]
    subject_split = assign_splits(df, ratios, seed)
    out = df.copy()
    if "split" in out.columns and "published_split" not in out.columns:
        out = out.rename(columns={"split": "published_split"})
    out["split"] = out["subject_id"].astype(str).map(subject_split)
    parts = {name: out[out["split"] == name].reset_index(drop=True) for name in names}
    empty = [name for name, part in parts.items() if part.empty]
    if empty:
        raise UserError(f"split '{empty[0]}' would be empty: {len(subject_split)} subjects are too few for "
                        f"ratios {','.join(f'{r:g}' for r in ratios)}; use more data or fewer splits")
    return parts


def write_splits(parts: dict[str, pd.DataFrame], outdir: str | os.PathLike[str], overwrite: bool = False) -> list[Path]:
    """Write OUTDIR/<name>.csv for every split; refuses (before writing any) if one exists without overwrite."""
    outdir = Path(outdir)
    targets = [outdir / f"{name}.csv" for name in parts]
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise UserError(f"{existing[0]} already exists; pass --overwrite or choose another -o folder")
    for target, part in zip(targets, parts.values()):
        write_manifest(part, target, overwrite=True)
    return targets


def split_warnings(parts: dict[str, pd.DataFrame]) -> list[str]:
    """A warning for every split that holds only one gender: its accuracy, balanced accuracy and AUC say little."""
    warnings = []
    for name, part in parts.items():
        present = sorted(set(part["gender"]))
        if len(present) < len(GENDERS):
            missing = next(g for g in GENDERS if g not in present)
            warnings.append(f"split '{name}' has no {missing} images ({len(part)} images, all {present[0]}); "
                            "metrics on it cannot measure both classes: use more subjects or other ratios")
    return warnings


def split_table(parts: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per split: subjects and images in total and per gender (and per modality when mixed)."""
    records = []
    mixed = len({m for part in parts.values() for m in part["modality"].unique()}) > 1
    for name, part in parts.items():
        record = {"split": name, "subjects": part["subject_id"].nunique(), "images": len(part)}
        for gender in ("female", "male"):
            rows = part[part["gender"] == gender]
            record[f"{gender} subjects"] = rows["subject_id"].nunique()
            record[f"{gender} images"] = len(rows)
        if mixed:
            for modality, rows in part.groupby("modality"):
                record[f"{modality} images"] = len(rows)
        records.append(record)
    return pd.DataFrame(records).fillna(0)


def _allocate(n: int, ratios: tuple[float, ...], expected: list[float], assigned: list[int]) -> list[int]:
    """Floor of ratio x n per split, the leftover units to the splits furthest behind their running target."""
    exact = [r * n for r in ratios]
    counts = [math.floor(x + 1e-9) for x in exact]
    leftover = n - sum(counts)
    candidates = [i for i, x in enumerate(exact) if x - counts[i] > 1e-9]
    priority = sorted(candidates, key=lambda i: (-(expected[i] + exact[i] - assigned[i] - counts[i]), i))
    for i in priority[:leftover]:
        counts[i] += 1
    for i in range(len(ratios)):
        expected[i] += exact[i]
        assigned[i] += counts[i]
    return counts
