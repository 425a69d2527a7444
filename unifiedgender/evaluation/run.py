"""The core of `ugn evaluate`: a checkpoint on a manifest (or a predictions table) -> report folder, run-log row."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from unifiedgender.data.ages import REPORT_AGE_EDGES, parse_report_age_edges
from unifiedgender.decision import Threshold, check_threshold
from unifiedgender.errors import UserError
from unifiedgender.evaluation.assess import evaluate_predictions, labelled
from unifiedgender.evaluation.provenance import dataset_name, model_run_info, split_name, training_majority
from unifiedgender.evaluation.report import write_report_folder
from unifiedgender.evaluation.runlog import DEFAULT_REGISTRY, RunInfo, append_run, registry_row
from unifiedgender.evaluation.table import EvaluationTable, read_predictions
from unifiedgender.evaluation.thresholds import THRESHOLD_METHODS


class Progress(Protocol):
    """Progress of one prediction pass over a manifest (the CLI's ImageProgress)."""

    def start(self, total: int) -> None: ...

    def record(self, record: dict[str, Any]) -> None: ...

    def stop(self) -> None: ...


@dataclass
class EvaluationResult:
    """What an evaluation produced: the report (report.json's content), the rows it used, the run it describes,
    and where its files went."""

    report: dict[str, Any]
    table: EvaluationTable
    run: RunInfo
    output: Path  # the report folder
    plots: bool  # whether plots/ was written
    registry: Path | None  # the run log that got one row; None with no registry


def run_evaluate(
    checkpoint: str | os.PathLike[str] | None = None,
    *,
    data: str | os.PathLike[str] | None = None,
    predictions: str | os.PathLike[str] | None = None,
    modalities: Sequence[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    threshold: float | None = None,
    threshold_policy: str | None = None,
    threshold_from: str | os.PathLike[str] | None = None,
    threshold_method: str = "youden",
    bootstrap: int = 1000,
    seed: int = 0,
    age_buckets: str | tuple[float, ...] = REPORT_AGE_EDGES,
    registry: str | os.PathLike[str] | None = DEFAULT_REGISTRY,
    overwrite: bool = False,
    plots: bool = True,
    tag: str | None = None,
    train_dataset: str | None = None,
    batch_size: int = 64,
    tta: bool = False,
    device: str | None = None,
    on_message: Callable[[str], None] | None = None,
    progress: Callable[[], Progress] | None = None,
) -> EvaluationResult:
    """Evaluate `checkpoint` on the manifest `data`, or an existing `predictions` table; usage problems raise
    UserError before any model is loaded.

    The threshold is `threshold`, the checkpoint's stored one of `threshold_policy`, one chosen by
    `threshold_method` on `threshold_from` (a predictions table, or a manifest the checkpoint predicts first),
    else the checkpoint's stored default (0.5 for a table). Writes the report folder `output` (default
    reports/CHECKPOINT__DATA or reports/PREDICTIONS; an existing one only with `overwrite`) and appends one row
    to `registry` (None: no row). `on_message` gets progress lines; `progress()` makes the progress of each
    prediction pass.
    """
    say: Callable[[str], None] = on_message or (lambda _: None)
    _check_usage(checkpoint, data, predictions, threshold, threshold_policy, threshold_from, threshold_method, tta)
    chosen_modalities = check_modalities(modalities)
    edges = parse_report_age_edges(age_buckets) if isinstance(age_buckets, str) else tuple(age_buckets)
    out = Path(output) if output is not None else Path("reports") / (
        f"{Path(checkpoint).stem}__{Path(data).stem}" if checkpoint is not None else Path(predictions).stem)
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists; pass --overwrite or choose another --output folder")

    predict = None
    if checkpoint is not None:
        checkpoint, data = Path(checkpoint), Path(data)
        predictor = _predictor(checkpoint, batch_size, device, tta, threshold, threshold_policy)
        decision, chosen = predictor.decision, predictor.threshold_choice
        predict = partial(_predict, predictor, checkpoint, modalities=chosen_modalities, say=say, progress=progress)
        frame = predict(data)
        run = model_run_info(checkpoint)
        train_manifest = run.train_dataset or train_dataset  # --train-dataset only renames it in the registry
        run.tag, run.train_dataset = tag or run.tag, train_dataset or run.train_dataset
        run.checkpoint, run.test_dataset, run.split, run.tta = str(checkpoint), dataset_name(data), split_name(frame, data), tta
        source = str(data)
    else:
        predictions = Path(predictions)
        decision, train_manifest = None, train_dataset
        frame = read_predictions(predictions)
        run = RunInfo(tag=tag, train_dataset=train_dataset, predictions=str(predictions),
                      test_dataset=dataset_name(predictions), split=split_name(frame, predictions))
        source = str(predictions)
        chosen = (Threshold(0.5, "fixed", "default 0.5 (a predictions table stores no threshold)") if threshold is None
                  else Threshold(check_threshold(threshold), "fixed", "given"))
    validation = _validation_table(Path(threshold_from), predict, tta, say) if threshold_from is not None else None

    report, table = evaluate_predictions(
        frame, threshold=chosen, decision=decision, validation=validation, threshold_method=threshold_method,
        n_resamples=bootstrap, seed=seed, age_buckets=edges, modalities=chosen_modalities, source=source,
        training_majority=training_majority(train_manifest),
    )
    run.report = str(out)
    report["run"] = run.as_dict()
    write_report_folder(report, table, labelled(frame, report["threshold"]["value"]), out, overwrite=overwrite, plots=plots)
    if registry is not None:
        append_run(registry, registry_row(report, run))
    return EvaluationResult(report=report, table=table, run=run, output=out, plots=plots,
                            registry=Path(registry) if registry is not None else None)


def _check_usage(checkpoint: Any, data: Any, predictions: Any, threshold: float | None, policy: str | None,
                 threshold_from: Any, method: str, tta: bool) -> None:
    """The combinations of inputs and threshold options that exclude each other, named as the CLI spells them."""
    if (checkpoint is None) == (predictions is None):
        raise UserError("give either CHECKPOINT with --data MANIFEST, or --predictions TABLE (not both)")
    if checkpoint is not None and data is None:
        raise UserError(f"CHECKPOINT {checkpoint} needs --data MANIFEST.csv to evaluate on")
    if predictions is not None and data is not None:
        raise UserError("--data is for a CHECKPOINT; with --predictions the table already holds the data")
    given = [name for name, value in (("--threshold", threshold), ("--threshold-policy", policy),
                                      ("--threshold-from", threshold_from)) if value is not None]
    if len(given) > 1:
        raise UserError(f"{given[0]} and {given[1]} exclude each other; pass one")
    if policy is not None and checkpoint is None:
        raise UserError("--threshold-policy reads the thresholds stored with a CHECKPOINT; with --predictions pass --threshold "
                        "or --threshold-from")
    if tta and checkpoint is None:
        raise UserError("--tta needs a CHECKPOINT to predict with; a --predictions table is evaluated as it is")
    if method not in THRESHOLD_METHODS:
        raise UserError(f"--threshold-method '{method}': use one of {', '.join(THRESHOLD_METHODS)}")


def check_modalities(modalities: Sequence[str] | None) -> tuple[str, ...] | None:
    """The modalities to evaluate (None: all), each checked against the manifest's modality names."""
    from unifiedgender.data.manifest import MODALITIES

    for value in modalities or ():
        if value not in MODALITIES:
            raise UserError(f"--modality '{value}': use one of {', '.join(MODALITIES)}")
    return tuple(modalities) if modalities else None


def _predictor(checkpoint: Path, batch_size: int, device: str | None, tta: bool, threshold: float | None,
               policy: str | None) -> Any:
    """The checkpoint (or ONNX export) loaded once, with its stored decision and the threshold asked for (and the
    age groups of a multitask model, for the age metrics)."""
    if not checkpoint.is_file():
        raise UserError(f"checkpoint not found: {checkpoint}; train one with `ugn train` or `ugn download checkpoints`")
    from unifiedgender.inference import Predictor

    return Predictor.from_checkpoint(checkpoint, device=device, batch_size=batch_size, tta=tta, threshold=threshold,
                                     threshold_policy=policy, with_age=True)


def _predict(predictor: Any, checkpoint: Path, manifest_path: Path, modalities: tuple[str, ...] | None,
             say: Callable[[str], None], progress: Callable[[], Progress] | None) -> pd.DataFrame:
    """Predictions table of `predictor` on a manifest's rows of `modalities` (all when None)."""
    from unifiedgender.data.manifest import read_manifest
    from unifiedgender.inference import predict_manifest

    manifest = read_manifest(manifest_path)
    if modalities:
        manifest = manifest[manifest["modality"].isin(modalities)].reset_index(drop=True)
        if manifest.empty:
            raise UserError(f"{manifest_path}: no rows with modality {', '.join(modalities)}; check --modality")
    say(f"predicting {len(manifest)} images of {manifest_path} with {checkpoint}{' (mirror TTA)' if predictor.tta else ''}")
    reporter = progress() if progress is not None else None
    if reporter is not None:
        reporter.start(len(manifest))
    try:
        return predict_manifest(predictor, manifest, on_record=reporter.record if reporter is not None else None)
    finally:
        if reporter is not None:
            reporter.stop()


def _validation_table(path: Path, predict: Callable[[Path], pd.DataFrame] | None, tta: bool,
                      say: Callable[[str], None]) -> pd.DataFrame:
    """`threshold_from`: a predictions table (told by its prob_male column) as it is, or a manifest predicted with
    the checkpoint (with `tta` as the test)."""
    if not path.is_file():
        raise UserError(f"--threshold-from: file not found: {path}")
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"--threshold-from {path}: not a readable CSV ({exc}); give a predictions table or a manifest") from exc
    if "prob_male" in header:
        if tta:
            say(f"note: --threshold-from {path} is used as it is (no mirror TTA); give the validation manifest to choose "
                "the threshold under --tta")
        return read_predictions(path)
    if predict is None:
        raise UserError(f"--threshold-from {path}: no 'prob_male' column; give a predictions table (or a manifest with CHECKPOINT)")
    return predict(path)
