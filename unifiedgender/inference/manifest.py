"""The predictions table for a manifest: every manifest column kept, plus prob_male, pred and status."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pandas as pd

from unifiedgender.inference.predictor import Predictor


def predict_manifest(
    checkpoint_path: str | os.PathLike[str] | Predictor,
    manifest_df: pd.DataFrame,
    batch_size: int = 64,
    device: str | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Predict every row of a manifest (absolute paths, as from read_manifest); rows keep their order.

    `checkpoint_path` may also be a ready Predictor (then batch_size, device and options are ignored).
    Unreadable images get `prob_male` NaN, an empty `pred` and the reason in `status`. A multitask model adds
    `pred_age_group`, its Adience age group (e.g. `25-32`), for the age metrics of `ugn evaluate`.
    `on_record` sees each prediction record as it is made (progress).
    """
    predictor = (
        checkpoint_path
        if isinstance(checkpoint_path, Predictor)
        else Predictor.from_checkpoint(checkpoint_path, device=device, batch_size=batch_size, **{"with_age": True, **options})
    )
    modalities = [m if isinstance(m, str) and m else None for m in manifest_df["modality"]] if "modality" in manifest_df else None
    records = []
    for record in predictor.predict_paths(list(manifest_df["path"]), modality=modalities):
        records.append(record)
        if on_record is not None:
            on_record(record)
    table = manifest_df.copy()
    table["prob_male"] = pd.array([r["prob_male"] for r in records], dtype="Float64").astype("float64")
    table["pred"] = [r["pred"] for r in records]
    table["status"] = [r["status"] for r in records]
    if any(r.get("age_group") for r in records):
        table["pred_age_group"] = [r.get("age_group") for r in records]
    return table
