"""`ugn export`: a checkpoint as ONNX (for onnxruntime and `ugn predict`) or TorchScript."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

TOLERANCE = 1e-4


def export(
    checkpoint: Path = typer.Argument(..., help="A ugn checkpoint (.pt)."),
    fmt: str = typer.Option("onnx", "--format", "-f", help="onnx or torchscript."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output file (default: beside the checkpoint)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
) -> None:
    """Export with a dynamic batch axis, inputs (image, modality) and the preprocessing in the metadata;
    checks the exported model against PyTorch on a sample batch (exit 1 if they differ by more than 1e-4)."""
    from unifiedgender.inference.export import export_checkpoint

    result = export_checkpoint(checkpoint, fmt, output, overwrite=overwrite)
    typer.echo(f"wrote {result['output']} ({result['format']}); max |logit - PyTorch| = {result['max_abs_diff']:.2e}")
    if result["max_abs_diff"] > TOLERANCE:
        typer.secho(f"exported outputs differ from PyTorch by more than {TOLERANCE:g}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)
