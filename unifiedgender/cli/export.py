"""`ugn export`: a checkpoint as ONNX (for onnxruntime and `ugn predict`) or TorchScript."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from unifiedgender.decision import THRESHOLD_POLICIES  # standard library only

TOLERANCE = 1e-4


def export(
    checkpoint: Path = typer.Argument(..., help="A ugn checkpoint (.pt)."),
    fmt: str = typer.Option("onnx", "--format", "-f", help="onnx or torchscript."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output file (default: beside the checkpoint)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    threshold: Optional[float] = typer.Option(
        None, "--threshold", "-t", help="Store this threshold on calibrated P(male) as the default [default: the checkpoint's]."
    ),
    threshold_policy: Optional[str] = typer.Option(
        None, "--threshold-policy", help=f"Store this policy's threshold as the default: {' | '.join(THRESHOLD_POLICIES)}."
    ),
) -> None:
    """Export with a dynamic batch axis, inputs (image, modality), the preprocessing and the model's decision
    (temperature, thresholds) in the metadata; checks the exported model against PyTorch on a sample batch
    (exit 1 if they differ by more than 1e-4)."""
    from unifiedgender.errors import UserError
    from unifiedgender.inference.export import export_checkpoint

    if threshold is not None and threshold_policy is not None:
        raise UserError("--threshold and --threshold-policy exclude each other; pass one")
    result = export_checkpoint(checkpoint, fmt, output, overwrite=overwrite, threshold=threshold, threshold_policy=threshold_policy)
    typer.echo(f"wrote {result['output']} ({result['format']}); max |logit - PyTorch| = {result['max_abs_diff']:.2e}")
    typer.echo(f"default threshold: {result['threshold'].describe()}")
    if result["max_abs_diff"] > TOLERANCE:
        typer.secho(f"exported outputs differ from PyTorch by more than {TOLERANCE:g}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)
