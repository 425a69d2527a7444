"""`ugn predict`: predict files, folders, globs or a manifest with a checkpoint or an exported ONNX model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from unifiedgender.cli.options import device_option
from unifiedgender.cli.progress import ImageProgress
from unifiedgender.decision import THRESHOLD_POLICIES  # standard library only

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
    device: str = device_option(),
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
    reporter = ImageProgress("predicting", print_records=output is None)
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


def _render_summary(summary: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    from unifiedgender.cli.render import make_console

    console = make_console(stderr=True)
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
        for column in ("subject", "images", "pred", "confidence", "status"):
            subjects.add_column(column)
        for row in summary.subject_rows:
            confidence = f"{row['confidence']:.3f}" if row["confidence"] is not None else ""
            subjects.add_row(Text(row["subject"]), f"{row['n_ok']}/{row['n_images']}", row["pred"], confidence, row["status"])
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
