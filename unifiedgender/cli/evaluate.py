"""`ugn evaluate` and `ugn runs`: parse -> unifiedgender.evaluation.run.run_evaluate / the run log -> render (cli/render.py).

Only typer and the standard library at import time; the core is imported lazily."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from unifiedgender.cli.options import device_option, old_output_option, pick_output
from unifiedgender.cli.progress import ImageProgress
from unifiedgender.decision import THRESHOLD_POLICIES  # standard library only
from unifiedgender.evaluation.runlog import DEFAULT_REGISTRY, RUN_FORMATS  # standard library only


def evaluate_command(
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
    from unifiedgender.cli.render import make_console, print_evaluation
    from unifiedgender.evaluation.run import run_evaluate

    console = make_console()
    result = run_evaluate(
        checkpoint, data=data, predictions=predictions, modalities=modality, output=pick_output(output, out_old, "--out"),
        threshold=threshold, threshold_policy=threshold_policy, threshold_from=threshold_from,
        threshold_method=threshold_method, bootstrap=bootstrap, seed=seed, age_buckets=age_buckets,
        registry=None if no_registry else registry, overwrite=overwrite, plots=not no_plots, tag=tag,
        train_dataset=train_dataset, batch_size=batch_size, tta=tta, device=device,
        on_message=lambda line: console.print(line, markup=False, highlight=False), progress=lambda: ImageProgress("predicting"),
    )
    print_evaluation(result, console)


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
    from unifiedgender.cli.render import make_console, runs_table
    from unifiedgender.errors import UserError
    from unifiedgender.evaluation.runlog import best_runs, read_registry, run_columns

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
    console.print(runs_table(top, chosen, sort, title=f"Best {len(top)} of {len(df)} runs by {sort} ({registry})"))
