"""What an evaluation evaluated: the model's record in a checkpoint or ONNX export, the data's names, and the
training data's majority class for the baseline."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from unifiedgender.evaluation.runlog import RunInfo


def model_run_info(checkpoint: Path) -> RunInfo:
    """tag, arch, backbone, configuration and training data recorded in a checkpoint (or an exported ONNX model)."""
    if checkpoint.suffix.lower() == ".onnx":
        from unifiedgender.inference.onnx_io import read_onnx_metadata

        meta = read_onnx_metadata(checkpoint)
        return RunInfo(tag=meta.get("tag") or None, arch=meta.get("arch") or None)
    from unifiedgender.checkpoint import read_checkpoint

    info = read_checkpoint(checkpoint)
    config = dict(info.get("config") or {})
    return RunInfo(
        tag=info.get("tag"),
        arch=info.get("arch"),
        backbone=info.get("backbone"),
        configuration={"model_kwargs": info.get("model_kwargs"), "flag": info.get("flag"), **config},
        train_dataset=config.get("train_dataset") or config.get("train_manifest") or config.get("train"),
    )


def training_majority(train_manifest: str | None) -> tuple[str, str] | None:
    """(majority gender, "training data (PATH)") when the training manifest is readable here, else None."""
    if not train_manifest or not Path(train_manifest).is_file():
        return None
    try:
        genders = pd.read_csv(train_manifest, usecols=["gender"])["gender"]
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError):
        return None
    counts = genders.value_counts()
    if counts.empty:
        return None
    return ("male" if counts.get("male", 0) >= counts.get("female", 0) else "female"), f"training data ({train_manifest})"


def dataset_name(path: Path) -> str:
    """The data's folder and file name, e.g. socofing/test.csv."""
    resolved = path.resolve()
    return f"{resolved.parent.name}/{resolved.name}"


def split_name(frame: pd.DataFrame, path: Path) -> str:
    """The manifest's single `split` value, else the file stem."""
    if "split" in frame.columns:
        values = frame["split"].dropna().unique()
        if len(values) == 1:
            return str(values[0])
    return path.stem
