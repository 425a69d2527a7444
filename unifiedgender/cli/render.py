"""Rendering helpers shared by CLI commands: the console, pandas frames as rich tables, import reports."""

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

PIPE_WIDTH = 1000  # without a terminal, lines are as long as their content: tables are not cut to 80 columns


def make_console(stderr: bool = False) -> Console:
    """A rich console; piped or logged (Slurm) output gets full-width tables instead of rich's 80 columns."""
    console = Console(stderr=stderr)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(stderr=stderr, width=PIPE_WIDTH)
    return console


console = make_console()


def print_table(df: "pd.DataFrame", title: str | None = None) -> None:
    """A frame as a rich table; numbers right-aligned."""
    table = Table(title=title, title_justify="left")
    for column in df.columns:
        numeric = df[column].dtype.kind in "iuf"
        table.add_column(str(column), justify="right" if numeric else "left")
    for row in df.itertuples(index=False):
        table.add_row(*(str(v) for v in row))
    console.print(table)


def print_import_report(result: "ImportResult", duplicates: "DuplicateReport", output: Path) -> None:
    """Counts, skipped inputs (with up to 20 names each), warnings and byte-identical groups after an import."""
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
