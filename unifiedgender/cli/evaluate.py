"""`ugn evaluate` and `ugn runs`. Only typer and the standard library at import time; the core is imported lazily."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from unifiedgender.cli.options import device_option, old_output_option, pick_output
from unifiedgender.cli.progress import ImageProgress
from unifiedgender.decision import THRESHOLD_POLICIES  # standard library only

DEFAULT_REGISTRY = Path("metrics/final_metrics_with_full_configurations.csv")


def evaluate(
    checkpoint: Optional[Path] = typer.Argument(None, help="Checkpoint (.pt) to evaluate on --data; omit it with --predictions."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Manifest CSV to predict and evaluate (with CHECKPOINT)."),
    predictions: Optional[Path] = typer.Option(
        None, "--predictions", "-p", help="Evaluate an existing predictions table instead of a checkpoint."
    ),
    modality: Optional[list[str]] = typer.Option(None, "--modality", "-m", help="Evaluate only this modality (repeatable)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Report folder (default: reports/CHECKPOINT__DATA or reports/PREDICTIONS)."),
    out_old: Optional[Path] = old_output_option("--out"),
    threshold: Optional[float] = typer.Option(
        None, "--threshold", help="Fixed threshold on P(male) [default: the checkpoint's stored threshold; 0.5 for a table]."
    ),
    threshold_policy: Optional[str] = typer.Option(
        None, "--threshold-policy", help=f"Use the checkpoint's stored threshold of this policy: {' | '.join(THRESHOLD_POLICIES)}."
    ),
    threshold_from: Optional[Path] = typer.Option(
        None,
        "--threshold-from",
        help="Choose the threshold on this validation table (predictions, or a manifest with CHECKPOINT) and apply it.",
    ),
    threshold_method: str = typer.Option("youden", "--threshold-method", help="How --threshold-from chooses: youden or eer."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="Subject-bootstrap resamples for the 95% CIs (0: none)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    age_buckets: str = typer.Option("0,18,30,45,60", "--age-buckets", help="Edges of the age groups for fairness."),
    registry: Path = typer.Option(DEFAULT_REGISTRY, "--registry", help="Run registry CSV that gets one row."),
    no_registry: bool = typer.Option(False, "--no-registry", help="Do not append to the run registry."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing report folder."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip the PNG plots (faster)."),
    tag: Optional[str] = typer.Option(None, "--tag", help="Run tag for the registry (default: the checkpoint's)."),
    train_dataset: Optional[str] = typer.Option(None, "--train-dataset", help="Training data for the registry (default: the checkpoint's config)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Prediction batch size (with CHECKPOINT)."),
    tta: bool = typer.Option(
        False, "--tta", help="Average P(male) over each image and its mirror image (with CHECKPOINT; also for a --threshold-from manifest)."
    ),
    device: str = device_option(),
) -> None:
    """Evaluate a checkpoint on a manifest (or an existing predictions table): metrics with subject-bootstrap CIs,
    subject-level results, fairness by group, report folder and one run-registry row."""
    from unifiedgender.cli.render import make_console
    from unifiedgender.decision import Threshold, check_threshold
    from unifiedgender.errors import UserError
    from unifiedgender.evaluation.evaluate import evaluate_predictions, labelled
    from unifiedgender.evaluation.registry import append_run, registry_row
    from unifiedgender.evaluation.report import write_report_folder
    from unifiedgender.evaluation.table import parse_age_buckets, read_predictions
    from unifiedgender.evaluation.thresholds import THRESHOLD_METHODS

    if (checkpoint is None) == (predictions is None):
        raise UserError("give either CHECKPOINT with --data MANIFEST, or --predictions TABLE (not both)")
    if checkpoint is not None and data is None:
        raise UserError(f"CHECKPOINT {checkpoint} needs --data MANIFEST.csv to evaluate on")
    if predictions is not None and data is not None:
        raise UserError("--data is for a CHECKPOINT; with --predictions the table already holds the data")
    given = [name for name, value in (("--threshold", threshold), ("--threshold-policy", threshold_policy),
                                      ("--threshold-from", threshold_from)) if value is not None]
    if len(given) > 1:
        raise UserError(f"{given[0]} and {given[1]} exclude each other; pass one")
    if threshold_policy is not None and checkpoint is None:
        raise UserError("--threshold-policy reads the thresholds stored with a CHECKPOINT; with --predictions pass --threshold "
                        "or --threshold-from")
    if tta and checkpoint is None:
        raise UserError("--tta needs a CHECKPOINT to predict with; a --predictions table is evaluated as it is")
    if threshold_method not in THRESHOLD_METHODS:
        raise UserError(f"--threshold-method '{threshold_method}': use one of {', '.join(THRESHOLD_METHODS)}")
    out = pick_output(output, out_old, "--out")
    modalities = _check_modalities(modality)
    edges = parse_age_buckets(age_buckets)
    console = make_console()

    if out is None:
        out = Path("reports") / (f"{checkpoint.stem}__{data.stem}" if checkpoint is not None else predictions.stem)
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists; pass --overwrite or choose another --output folder")

    run: dict = {"tag": tag, "train_dataset": train_dataset, "category": "evaluation"}
    train_manifest = train_dataset  # where the majority-class baseline's class comes from, when readable
    predictor = decision = None
    if checkpoint is not None:
        predictor = _predictor(checkpoint, batch_size, device, tta, threshold, threshold_policy)
        decision = predictor.decision
        chosen = predictor.threshold_choice
        frame = _predict(predictor, checkpoint, data, modalities, console)
        run.update(_checkpoint_run_info(checkpoint))
        train_manifest = run.get("train_dataset") or train_dataset  # --train-dataset only renames it in the registry
        run["tag"] = tag or run.get("tag")
        run["train_dataset"] = train_dataset or run.get("train_dataset")
        run.update(checkpoint=str(checkpoint), test_dataset=_dataset_name(data), split=_split_name(frame, data), tta=tta)
        source = str(data)
    else:
        frame = read_predictions(predictions)
        run.update(predictions=str(predictions), test_dataset=_dataset_name(predictions), split=_split_name(frame, predictions))
        source = str(predictions)
        chosen = (Threshold(0.5, "fixed", "default 0.5 (a predictions table stores no threshold)") if threshold is None
                  else Threshold(check_threshold(threshold), "fixed", "given"))
    validation = None
    if threshold_from is not None:
        validation = _validation_table(threshold_from, predictor, checkpoint, modalities, console, tta)

    report, table = evaluate_predictions(
        frame,
        threshold=chosen,
        decision=decision,
        validation=validation,
        threshold_method=threshold_method,
        n_resamples=bootstrap,
        seed=seed,
        age_buckets=edges,
        modalities=modalities,
        source=source,
        training_majority=_training_majority(train_manifest),
    )
    report["run"] = {k: v for k, v in run.items() if k != "configuration"}
    write_report_folder(report, table, labelled(frame, report["threshold"]["value"]), out, overwrite=overwrite, plots=not no_plots)
    run["report"] = str(out)
    if not no_registry:
        append_run(registry, registry_row(report, run))
    print_summary(report, console)
    console.print(f"report: {out}/report.md, {out}/report.json, {out}/predictions.csv" + ("" if no_plots else f", {out}/plots/"))
    if not no_registry:
        console.print(f"registry: appended one row to {registry}")


def _check_modalities(modality: list[str] | None) -> tuple[str, ...] | None:
    from unifiedgender.data.manifest import MODALITIES
    from unifiedgender.errors import UserError

    for value in modality or ():
        if value not in MODALITIES:
            raise UserError(f"--modality '{value}': use one of {', '.join(MODALITIES)}")
    return tuple(modality) if modality else None


def _predictor(checkpoint: Path, batch_size: int, device: str, tta: bool, threshold: float | None, policy: str | None):
    """The checkpoint (or ONNX export) loaded once, with its stored decision and the threshold asked for (and the
    age groups of a multitask model, for the age metrics)."""
    from unifiedgender.errors import UserError
    from unifiedgender.inference import Predictor

    if not checkpoint.is_file():
        raise UserError(f"checkpoint not found: {checkpoint}; train one with `ugn train` or `ugn download checkpoints`")
    return Predictor.from_checkpoint(checkpoint, device=device, batch_size=batch_size, tta=tta, threshold=threshold,
                                     threshold_policy=policy, with_age=True)


def _predict(predictor, checkpoint: Path, manifest_path: Path, modalities: tuple[str, ...] | None, console):
    """Predictions table of `predictor` on a manifest's rows of `modalities` (all when None)."""
    from unifiedgender.data.manifest import read_manifest
    from unifiedgender.errors import UserError
    from unifiedgender.inference import predict_manifest

    manifest = read_manifest(manifest_path)
    if modalities:
        manifest = manifest[manifest["modality"].isin(modalities)].reset_index(drop=True)
        if manifest.empty:
            raise UserError(f"{manifest_path}: no rows with modality {', '.join(modalities)}; check --modality")
    console.print(f"predicting {len(manifest)} images of {manifest_path} with {checkpoint}{' (mirror TTA)' if predictor.tta else ''}")
    progress = ImageProgress("predicting")
    progress.start(len(manifest))
    try:
        return predict_manifest(predictor, manifest, on_record=progress.record)
    finally:
        progress.stop()


def _validation_table(path: Path, predictor, checkpoint: Path | None, modalities: tuple[str, ...] | None, console, tta: bool):
    """--threshold-from: a predictions table as is, or a manifest predicted with the checkpoint (with `tta` as the test)."""
    import pandas as pd

    from unifiedgender.errors import UserError
    from unifiedgender.evaluation.table import read_predictions

    if not path.is_file():
        raise UserError(f"--threshold-from: file not found: {path}")
    header = pd.read_csv(path, nrows=0).columns
    if "prob_male" in header:
        if tta:
            console.print(f"note: --threshold-from {path} is used as it is (no mirror TTA); give the validation manifest to choose the threshold under --tta")
        return read_predictions(path)
    if predictor is None:
        raise UserError(f"--threshold-from {path}: no 'prob_male' column; give a predictions table (or a manifest with CHECKPOINT)")
    return _predict(predictor, checkpoint, path, modalities, console)


def _checkpoint_run_info(checkpoint: Path) -> dict:
    """tag, arch, backbone, configuration and training data recorded in a checkpoint (or an exported ONNX model)."""
    if checkpoint.suffix.lower() == ".onnx":
        from unifiedgender.inference.onnx_io import read_onnx_metadata

        meta = read_onnx_metadata(checkpoint)
        return {"tag": meta.get("tag") or None, "arch": meta.get("arch") or None, "configuration": {}}
    from unifiedgender.checkpoint import read_checkpoint

    info = read_checkpoint(checkpoint)
    config = dict(info.get("config") or {})
    return {
        "tag": info.get("tag"),
        "arch": info.get("arch"),
        "backbone": info.get("backbone"),
        "configuration": {"model_kwargs": info.get("model_kwargs"), "flag": info.get("flag"), **config},
        "train_dataset": config.get("train_dataset") or config.get("train_manifest") or config.get("train"),
    }


def _training_majority(train_manifest: str | None) -> tuple[str, str] | None:
    """(majority gender, "training data (PATH)") when the training manifest is readable here, else None."""
    import pandas as pd

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


def _dataset_name(path: Path) -> str:
    """The data's folder and file name, e.g. socofing/test.csv."""
    resolved = path.resolve()
    return f"{resolved.parent.name}/{resolved.name}"


def _split_name(frame, path: Path) -> str:
    """The manifest's single `split` value, else the file stem."""
    if "split" in frame.columns:
        values = frame["split"].dropna().unique()
        if len(values) == 1:
            return str(values[0])
    return path.stem


def print_summary(report: dict, console) -> None:
    """Rich terminal summary: metrics with CIs (images and subjects), baseline, exclusions, fairness gaps."""
    from rich.markup import escape
    from rich.table import Table

    from unifiedgender.decision import Threshold
    from unifiedgender.evaluation.fairness import MIN_CI_SUBJECTS
    from unifiedgender.evaluation.metrics import METRIC_NAMES

    data, threshold = report["data"], Threshold(**report["threshold"])
    console.print(
        f"[bold]{data['n_evaluated']}[/] images of [bold]{data['n_subjects']}[/] subjects evaluated "
        f"({data['n_excluded']} excluded{': ' + ', '.join(f'{r} {n}' for r, n in data['excluded'].items()) if data['excluded'] else ''}); "
        f"threshold {escape(threshold.describe())}"
    )
    calibration = report.get("calibration")
    if calibration:
        console.print(
            f"calibration: temperature {calibration['temperature']:.3f}; ECE here {_f(calibration['ece_uncalibrated'])} "
            f"uncalibrated -> {_f(calibration['ece_calibrated'])} calibrated"
        )
    table = Table(title=f"Metrics (95% CI: {report['bootstrap']['n_resamples']} subject resamples, seed {report['bootstrap']['seed']})")
    for column in ("metric", "images", "95% CI", "subjects", "95% CI"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    image, subject = report["image_level"], report["subject_level"]
    for name in METRIC_NAMES:
        table.add_row(name, _f(image["metrics"][name]), _ci(image["ci"].get(name)), _f(subject["metrics"][name]), _ci(subject["ci"].get(name)))
        if name == "balanced_accuracy":
            half = image["at_0.5"], subject["at_0.5"]
            table.add_row("balanced_accuracy at 0.5", *(t for h in half for t in (_f(h["balanced_accuracy"]), _ci(h["balanced_accuracy_ci"]))))
    for label, key in (("baseline accuracy", "accuracy"), ("baseline balanced acc.", "balanced_accuracy")):
        table.add_row(f"[dim]{label}[/]", _f(image["baseline"][key]), "", _f(subject["baseline"][key]), "")
    console.print(table)
    console.print(
        f"[dim]baseline: always '{image['baseline']['majority_class']}' (majority class of the "
        f"{image['baseline']['majority_class_from']})[/]"
    )
    fairness = Table(title=f"Fairness by group (95% CI); gaps = max - min over groups; groups under {MIN_CI_SUBJECTS} "
                           "subjects are too small for an interval")
    for column in ("attribute", "group", "images", "subjects", "balanced acc.", "TPR", "FPR", "AUC", "selection rate"):
        fairness.add_column(column, justify="left" if column in ("attribute", "group") else "right")
    metrics = ("balanced_accuracy", "tpr", "fpr", "roc_auc", "selection_rate")
    for attribute, entry in report["fairness"].items():
        for group, v in entry["groups"].items():
            small = v.get("too_small", False)
            fairness.add_row(
                attribute, escape(group) + (" [yellow](too small)[/]" if small else ""), str(v["n"]), str(v["n_subjects"]),
                *(_f(v[m]) if small else f"{_f(v[m])} {_ci(v[m + '_ci'])}" for m in metrics),
            )
        gaps = entry["difference"]
        fairness.add_row(attribute, "[bold]gap[/]", "", "", *(_f(gaps[m]) for m in metrics))
        fairness.add_row(
            attribute, "[dim]DP / EO diff.[/]", "", "",
            f"{_f(entry['demographic_parity_difference'])} / {_f(entry['equalized_odds_difference'])}", "", "", "", "",
            end_section=True,
        )
    console.print(fairness)
    shift = report.get("shift")
    if shift and shift["shifted"]:
        console.print(shift["message"], style="yellow", markup=False, highlight=False, soft_wrap=True)
    age = report.get("age")
    if age and age["n"]:
        base = age["baseline"]
        console.print(
            f"age group ({age['n']} images with a known age): exact {_f(age['exact_accuracy'])}, one-off "
            f"{_f(age['one_off_accuracy'])} [dim](baseline always '{base['group']}': {_f(base['exact_accuracy'])}, "
            f"{_f(base['one_off_accuracy'])})[/]"
        )


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _ci(ci) -> str:
    return "" if not ci or ci[0] is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


RUN_FORMATS = ("table", "csv", "json")


def runs(
    arch: Optional[str] = typer.Option(None, "--arch", help="Keep runs whose arch or tag contains this."),
    modality: Optional[str] = typer.Option(None, "--modality", help="Keep runs whose modality contains this."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Keep runs whose test or train dataset contains this."),
    category: Optional[str] = typer.Option(None, "--category", help="Keep runs of this category (e.g. ablation)."),
    sort: str = typer.Option("balanced_accuracy", "--sort", help="Metric column to rank by."),
    k: int = typer.Option(10, "-k", "--top", min=1, help="How many runs to show."),
    ascending: bool = typer.Option(False, "--ascending", help="Lowest first (for losses such as log_loss)."),
    registry: Path = typer.Option(DEFAULT_REGISTRY, "--registry", help="Run registry CSV (ours or UnifiedGenderNet's)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table (readable columns) | csv | json (every column)."),
    columns: Optional[str] = typer.Option(None, "--columns", "-c", help="Comma-separated registry columns to show instead."),
) -> None:
    """Print the best runs of the run registry: a table, or CSV/JSON for scripts."""
    from unifiedgender.cli.render import make_console
    from unifiedgender.errors import UserError
    from unifiedgender.evaluation.registry import best_runs, read_registry, run_columns

    if fmt not in RUN_FORMATS:
        raise UserError(f"--format '{fmt}': use one of {', '.join(RUN_FORMATS)}")
    df = read_registry(registry)
    top = best_runs(df, sort=sort, k=k, arch=arch, modality=modality, dataset=dataset, category=category, ascending=ascending)
    chosen = run_columns(top, sort, columns.split(",") if columns else None, readable=fmt == "table")
    if fmt == "csv":
        typer.echo(top[chosen].to_csv(index=False), nl=False)
        return
    if fmt == "json":
        typer.echo(top[chosen].to_json(orient="records", indent=2))
        return
    console = make_console()
    if top.empty:
        console.print(f"no runs in {registry} match the filters")
        return
    console.print(_runs_table(top, chosen, sort, title=f"Best {len(top)} of {len(df)} runs by {sort} ({registry})"))


def _runs_table(top, columns: list[str], sort: str, title: str):
    """Rank, the chosen columns, and the sort metric with its 95% CI in one cell."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    for column in columns:
        table.add_column(f"{column} [95% CI]" if column == sort and f"{sort}_ci_low" in top.columns else column,
                         justify="right" if top[column].dtype.kind in "iuf" else "left")
    for rank, (_, row) in enumerate(top.iterrows(), start=1):
        cells = [_cell_text(row[c]) for c in columns]
        if sort in columns and f"{sort}_ci_low" in top.columns and row[f"{sort}_ci_low"] == row[f"{sort}_ci_low"]:
            i = columns.index(sort)
            cells[i] += f" [{row[f'{sort}_ci_low']:.3f}, {row[f'{sort}_ci_high']:.3f}]"
        table.add_row(str(rank), *cells)
    return table


def _cell_text(value) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.4f}"
    return str(value)
