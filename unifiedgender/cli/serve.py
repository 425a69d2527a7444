"""`ugn serve`: a web page and JSON API for one checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from unifiedgender.decision import THRESHOLD_POLICIES  # standard library only


def serve(
    checkpoint: Path = typer.Argument(..., help="Checkpoint (.pt) from `ugn train`, or an ONNX file from `ugn export`."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on; 0.0.0.0 exposes the page to the network."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    max_upload_mb: float = typer.Option(10.0, min=0.01, help="Largest request body (all files together), in MiB."),
    max_pixels: int = typer.Option(40_000_000, min=1, help="Largest image in pixels; bigger ones are refused."),
    max_files: int = typer.Option(32, min=1, help="Most files in one request."),
    device: str = typer.Option(None, help="torch device (cpu, cuda, cuda:1); default: the GPU when there is one."),
    threads: int = typer.Option(None, min=1, help="CPU threads for the model (default: torch's, one per core)."),
    threshold: Optional[float] = typer.Option(
        None, "--threshold", "-t", help="prob_male at or above it: male [default: the threshold stored with the model]."
    ),
    threshold_policy: Optional[str] = typer.Option(
        None, "--threshold-policy", help=f"Use the model's stored threshold of this policy: {' | '.join(THRESHOLD_POLICIES)}."
    ),
) -> None:
    """Serve an upload page at / and a JSON API (POST /api/predict, GET /health)."""
    from unifiedgender.errors import UserError

    if threshold is not None and threshold_policy is not None:
        raise UserError("--threshold and --threshold-policy exclude each other; pass one")
    if not checkpoint.is_file():
        raise UserError(f"checkpoint not found: {checkpoint}; pass a .pt file from `ugn train` or a .onnx from `ugn export`")
    from unifiedgender.inference.predictor import Predictor
    from unifiedgender.serve import ServeLimits, create_app, run_server
    from unifiedgender.serve.server import LOOPBACK_HOSTS

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    limits = ServeLimits(max_upload_bytes=int(max_upload_mb * 1024 * 1024), max_pixels=max_pixels, max_files=max_files)
    predictor = Predictor.from_checkpoint(checkpoint, device=device, threshold=threshold, threshold_policy=threshold_policy)
    app = create_app(predictor, limits)
    if host not in LOOPBACK_HOSTS:
        typer.secho(
            f"warning: listening on {host}: anyone who can reach it can upload images (no authentication)",
            err=True, fg=typer.colors.YELLOW,
        )
    typer.echo(f"threshold: {predictor.threshold_choice.describe()}", err=True)
    typer.echo(f"serving {checkpoint.name} at http://{f'[{host}]' if ':' in host else host}:{port}/", err=True)
    run_server(app, host=host, port=port)
