"""`ugn fuse`: fingerprint models on ridge features and per-person fusion by finger position (lazy imports)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def fuse(
    features: Path = typer.Option(..., "--features", help="Ridge feature table (`ugn data features`) covering every split."),
    train: Path = typer.Option(..., "--train", help="Training manifest (the ridge models learn on it)."),
    val: Path = typer.Option(..., "--val", help="Validation manifest (C is chosen on it; stackers learn on it)."),
    test: Path = typer.Option(..., "--test", help="Test manifest (only predicted)."),
    val_scores: Optional[Path] = typer.Option(None, "--val-scores", help="Image model's validation predictions (e.g. RUN/val_predictions.csv)."),
    test_scores: Optional[Path] = typer.Option(None, "--test-scores", help="Image model's test predictions (e.g. REPORT/predictions.csv)."),
    out: Path = typer.Option(..., "--output", "-o", help="Folder for MODEL/{val,test}_predictions.csv and selection.json."),
    seed: int = typer.Option(0, "--seed", help="Seed of the validation folds of the stackers."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace results in --output."),
) -> None:
    """Ridge-feature models and finger-position-aware per-person stackers; evaluate each with
    `ugn evaluate --predictions OUT/MODEL/test_predictions.csv --threshold-from OUT/MODEL/val_predictions.csv`."""
    from unifiedgender.errors import UserError
    from unifiedgender.fingerprints.fusion import fuse_files, write_fusion

    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{out} already holds results; pass --overwrite or choose another --output folder")
    result = fuse_files(features, train, val, test, val_scores, test_scores, seed=seed)
    write_fusion(result, out, overwrite=overwrite)
    for name, chosen in result.selection.items():
        auc = chosen.get("val_roc_auc", chosen.get("val_roc_auc_out_of_fold"))
        typer.echo(f"{name}: C={chosen['C']:g}, validation ROC-AUC {auc:.3f} ({chosen['trained_on']}) -> {out / name}")
