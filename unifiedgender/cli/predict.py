"""`ugn predict`: predict files, folders, globs or a manifest with a checkpoint or an exported ONNX model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from unifiedgender.decision import THRESHOLD_POLICIES  # standard library only

PLAIN_LOG_EVERY_S = 10.0


def predict(
    inputs: list[str] = typer.Argument(..., metavar="PATH...", help="Image files, folders, globs or a manifest .csv."),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="A ugn checkpoint (.pt) or an exported .onnx."),
    modality: Optional[str] = typer.Option(
        None, "--modality", "-m", help="hand|face|fingerprint|fluting_virtual|fluting_tactile for inputs without one."
    ),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Walk sub-folders (and ** in globs)."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", min=1, help="Images per forward pass."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", min=1, help="Decoding threads (default: cores, max 8)."),
    tta: bool = typer.Option(False, "--tta", help="Average over the image and its mirror image."),
    threshold: Optional[float] = typer.Option(
        None, "--threshold", "-t", help="prob_male at or above it: male [default: the threshold stored with the model]."
    ),
    threshold_policy: Optional[str] = typer.Option(
        None, "--threshold-policy", help=f"Use the model's stored threshold of this policy: {' | '.join(THRESHOLD_POLICIES)}."
    ),
    group_by: Optional[str] = typer.Option(
        None, "--group-by", "-g", help="Regex on the file name whose named or first group is the subject: adds one prediction per subject (mean prob)."
    ),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="predictions.csv, .json or .jsonl (else printed)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    annotate: Optional[Path] = typer.Option(None, "--annotate", help="Folder for copies with label and confidence drawn on."),
    contact_sheet: Optional[Path] = typer.Option(None, "--contact-sheet", help="PNG grid of thumbnails with predictions."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    engine: str = typer.Option(
        "auto", "--engine", help="auto (onnxruntime on a CPU, PyTorch on a GPU), torch or onnxruntime."
    ),
    detect: Optional[str] = typer.Option(
        None, "--detect", help="face: find every face in each photo (offline detector), one row per face with its box."
    ),
) -> None:
    """Predict every image; exit code 0 when all were read, 1 when any failed (see the status column), 2 on bad usage."""
    from unifiedgender.errors import UserError
    from unifiedgender.inference.run import run_predict

    if threshold is not None and threshold_policy is not None:
        raise UserError("--threshold and --threshold-policy exclude each other; pass one")
    reporter = _Reporter(print_records=output is None)
    try:
        summary = run_predict(
            inputs, checkpoint, modality=modality, recursive=recursive, batch_size=batch_size, workers=workers,
            tta=tta, threshold=threshold, threshold_policy=threshold_policy, group_by=group_by, output=output,
            overwrite=overwrite, annotate=annotate, contact_sheet=contact_sheet, device=device, engine=engine, detect=detect,
            on_start=reporter.start, on_record=reporter.record,
        )
    finally:
        reporter.stop()
    _render_summary(summary)
    if summary.n_failed:
        raise typer.Exit(1)


class _Reporter:
    """A rich progress bar on a terminal, plain log lines otherwise; records echoed when there is no -o."""

    def __init__(self, print_records: bool) -> None:
        self.print_records = print_records
        self.progress: Any = None
        self.task: Any = None
        self.done = 0
        self.total = 0
        self.last_log = 0.0

    def start(self, total: int) -> None:
        import time

        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.total, self.last_log = total, time.monotonic()
        console = Console(stderr=True)
        if console.is_terminal:
            self.progress = Progress(
                TextColumn("predicting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
            )
            self.progress.start()
            self.task = self.progress.add_task("predict", total=total)
        else:
            typer.echo(f"predicting {total} images", err=True)

    def record(self, record: dict[str, Any]) -> None:
        import time

        if record.get("face") in (None, 1):
            self.done += 1
        if self.print_records:
            from unifiedgender.crop.face import STATUS_NO_FACE

            text = f"{record['label']}\t{record['confidence']:.3f}" if record["status"] == "ok" else "failed\t"
            if record["status"] == STATUS_NO_FACE:
                text = "no face\t"
            if record.get("face") is not None:
                text += f"\tface {record['face']} at {record['x0']},{record['y0']},{record['x1']},{record['y1']}"
            line = f"{text}\t{record['path']}" + ("" if record["status"] == "ok" else f"\t{record['status']}")
            (self.progress.console.print(line, markup=False, highlight=False) if self.progress else typer.echo(line))
        if record.get("face") not in (None, 1):
            return  # progress counts photos: only a photo's first face advances it
        if self.progress is not None:
            self.progress.advance(self.task)
        elif time.monotonic() - self.last_log >= PLAIN_LOG_EVERY_S:
            self.last_log = time.monotonic()
            typer.echo(f"{self.done}/{self.total} images", err=True)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _render_summary(summary: Any) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(stderr=True)
    table = Table(title=f"ugn predict · {summary.model} · {summary.engine}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("images", str(summary.n_images))
    table.add_row("predicted", f"{summary.n_ok}  (male {summary.n_male}, female {summary.n_female})")
    if summary.n_no_face is not None:
        table.add_row("faces", f"{summary.n_ok} (no face found in {summary.n_no_face} images)")
    table.add_row("failed", f"[red]{summary.n_failed}[/red]" if summary.n_failed else "0")
    table.add_row("threshold", Text(summary.threshold.describe()))
    table.add_row("speed", f"{summary.images_per_second:.1f} images/s ({summary.seconds:.1f} s)")
    if summary.subject_rows or summary.unmatched:
        table.add_row("subjects", f"{len(summary.subject_rows)} (file names not matching --group-by: {summary.unmatched})")
    files = [
        ("predictions", summary.output), ("per subject", summary.subjects_output),
        ("annotated copies", f"{summary.annotated} images in {summary.annotate_dir}" if summary.annotate_dir else None),
        ("contact sheet", summary.contact_sheet),
    ]
    console.print(table)
    if summary.note:
        console.print(summary.note, soft_wrap=True, markup=False, highlight=False)
    for label, value in files:
        if value is not None:
            console.print(f"{label}: {value}", soft_wrap=True, markup=False, highlight=False)
    if summary.subject_rows and summary.output is None:
        subjects = Table(title="per subject (mean prob_male)")
        for column in ("subject", "images", "label", "confidence", "status"):
            subjects.add_column(column)
        for row in summary.subject_rows:
            confidence = f"{row['confidence']:.3f}" if row["confidence"] is not None else ""
            subjects.add_row(Text(row["subject"]), f"{row['n_ok']}/{row['n_images']}", row["label"], confidence, row["status"])
        console.print(subjects)
    if summary.shift is not None and summary.shift.shifted:
        console.print(summary.shift.message(), style="yellow", soft_wrap=True, markup=False, highlight=False)
    if summary.failures:
        failed = Table(title=f"failed images (first {len(summary.failures)} of {summary.n_failed})")
        failed.add_column("path", overflow="fold")
        failed.add_column("reason", overflow="fold")
        for path, reason in summary.failures:
            failed.add_row(Text(path), Text(reason))
        console.print(failed)
