"""Rendering shared by CLI commands: the console, pandas frames as rich tables, import reports, the evaluation
summary and the run-log table. Rich is imported here; command modules import this module inside their bodies."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    import pandas as pd

    from unifiedgender.data.dedup import DuplicateReport
    from unifiedgender.data.importers.base import ImportResult
    from unifiedgender.evaluation.run import EvaluationResult

PIPE_WIDTH = 1000  # without a terminal, lines are as long as their content: tables are not cut to 80 columns


def make_console(stderr: bool = False) -> Console:
    """A rich console; piped or logged (Slurm) output gets full-width tables instead of rich's 80 columns."""
    console = Console(stderr=stderr)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(stderr=stderr, width=PIPE_WIDTH)
    return console


def print_table(df: "pd.DataFrame", title: str | None = None, console: Console | None = None) -> None:
    """A frame as a rich table; numbers right-aligned."""
    console = console or make_console()
    table = Table(title=title, title_justify="left")
    for column in df.columns:
        numeric = df[column].dtype.kind in "iuf"
        table.add_column(str(column), justify="right" if numeric else "left")
    for row in df.itertuples(index=False):
        table.add_row(*(str(v) for v in row))
    console.print(table)


def print_import_report(result: "ImportResult", duplicates: "DuplicateReport", output: Path,
                        console: Console | None = None) -> None:
    """Counts, skipped inputs (with up to 20 names each), warnings and byte-identical groups after an import."""
    console = console or make_console()
    df = result.frame
    by_gender = df.groupby("gender")["subject_id"].nunique().to_dict()
    images = df["gender"].value_counts().to_dict()
    console.print(
        f"[bold]{result.fmt}[/bold]: {len(df)} images of {df['subject_id'].nunique()} subjects "
        f"({images.get('female', 0)} female / {images.get('male', 0)} male images; "
        f"{by_gender.get('female', 0)} female / {by_gender.get('male', 0)} male subjects) -> {output}",
        highlight=False,
    )
    for key, count in result.counts.items():
        console.print(f"  {key}: {count}", highlight=False)
        listed = result.problems.get(key, [])
        for name in listed:
            console.print(f"    {name}", highlight=False)
        if listed and count > len(listed):
            console.print(f"    ... and {count - len(listed)} more", highlight=False)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if duplicates.groups:
        console.print(
            f"  byte-identical images: {duplicates.images} in {duplicates.groups} groups (tied in dup_group); "
            f"{len(duplicates.cross_subject)} groups span subjects, {len(duplicates.conflicting_gender)} with "
            "conflicting gender", highlight=False)
        for name, subjects, genders in duplicates.cross_subject[:20]:
            console.print(f"    {name}: subjects {', '.join(f'{s} ({g})' for s, g in zip(subjects, genders))}",
                          highlight=False)


def print_evaluation(result: "EvaluationResult", console: Console) -> None:
    """`ugn evaluate`: the summary of its report, then where the report folder and the run-log row went."""
    out = result.output
    print_evaluation_summary(result.report, console)
    console.print(f"report: {out}/report.md, {out}/report.json, {out}/predictions.csv" + (f", {out}/plots/" if result.plots else ""),
                  markup=False, highlight=False)
    if result.registry is not None:
        console.print(f"registry: appended one row to {result.registry}", markup=False, highlight=False)


def print_evaluation_summary(report: dict, console: Console) -> None:
    """Rich terminal summary: metrics with CIs (images and subjects), baseline, exclusions, fairness gaps."""
    from rich.markup import escape

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


def runs_table(top: "pd.DataFrame", columns: list[str], sort: str, title: str) -> Table:
    """`ugn runs`: rank, the chosen columns, and the sort metric with its 95% CI in one cell."""
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
