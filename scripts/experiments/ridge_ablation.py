"""Validation-only ablations of the ridge models (which inputs carry the signal); test data is never read.

Usage: ridge_ablation.py FEATURES.csv SPLIT_DIR [SPLIT_DIR ...]   (each SPLIT_DIR holds train.csv and val.csv)
Prints validation ROC-AUC (image level for ridge_image, person level for ridge_person) per variant and split:
with and without finger position, and ridge_person with one feature group left out. Same models as `ugn fuse`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from unifiedgender.data.manifest import read_manifest
from unifiedgender.fingerprints import fusion
from unifiedgender.fingerprints.features import feature_columns, read_feature_table

GROUPS = {
    "print size": ("rf_height", "rf_width", "rf_area_fraction"),
    "ridge frequency": ("rf_freq_", "rf_period", "rf_windows"),
    "density and widths": ("rf_ridge_",),
    "orientation": ("rf_coherence", "rf_low_coherence", "rf_orientation"),
    "spectrum": ("rf_spectrum_",),
    "grey levels": ("rf_grey_",),
}


def _best_auc(x_train, y_train, x_val, y_val) -> float:
    return max(fusion._auc(y_val, fusion._model(c).fit(x_train, y_train).predict_proba(x_val)[:, 1]) for c in fusion.C_GRID)


def ablate(features, split_dir: Path) -> dict[str, float]:
    train = fusion.split_data(read_manifest(split_dir / "train.csv"), features, None, "train")
    val = fusion.split_data(read_manifest(split_dir / "val.csv"), features, None, "validation")
    positions = sorted(set(train.frame["position"]))
    names = feature_columns(features)
    fill = np.nanmean(train.features, axis=0)
    out = {}
    x = [fusion._image_design(d, positions, fill) for d in (train, val)]
    out["ridge_image"] = _best_auc(x[0], train.labels, x[1], val.labels)
    k = len(names)
    out["ridge_image without position"] = _best_auc(x[0][:, :k], train.labels, x[1][:, :k], val.labels)
    persons = [fusion._person_matrix(d, d.features, positions) for d in (train, val)]
    person_fill = np.nanmean(persons[0][1], axis=0)
    px = [fusion._fill(p[1], person_fill) for p in persons]
    py = [fusion._person_labels(d, p[0]) for d, p in zip((train, val), persons)]
    out["ridge_person"] = _best_auc(px[0], py[0], px[1], py[1])
    averaged = [np.nanmean(p[1].reshape(len(p[0]), k, len(positions)), axis=2) for p in persons]
    out["ridge_person, features averaged over fingers (no position)"] = _best_auc(
        np.nan_to_num(averaged[0]), py[0], np.nan_to_num(averaged[1]), py[1])
    for group, prefixes in GROUPS.items():
        keep = [i for i, n in enumerate(names) if not n.startswith(prefixes)]
        cols = [i * len(positions) + j for i in keep for j in range(len(positions))]
        out[f"ridge_person without {group}"] = _best_auc(px[0][:, cols], py[0], px[1][:, cols], py[1])
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.exit(__doc__)
    features = read_feature_table(argv[0])
    results = [ablate(features, Path(d)) for d in argv[1:]]
    print("| variant | " + " | ".join(Path(d).parent.name for d in argv[1:]) + " | mean |")
    print("|---|" + "---|" * (len(results) + 1))
    for name in results[0]:
        values = [r[name] for r in results]
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + f" | {np.mean(values):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
