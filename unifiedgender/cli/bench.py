"""`ugn bench` commands: `predict` (throughput of ugn predict against a one-image-at-a-time loop)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("predict")
def predict(
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="A ugn checkpoint (default: build --arch/--backbone with random weights)."),
    arch: str = typer.Option("umcc", "--arch", help="Architecture when no checkpoint is given."),
    backbone: str = typer.Option("mobilenetv2_100", "--backbone", help="Backbone when no checkpoint is given."),
    folder: Optional[Path] = typer.Option(None, "--folder", help="Folder of images (default: synthetic 250 px JPEGs)."),
    n_images: int = typer.Option(300, "--n-images", "-n", min=1, help="Images to time."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", min=1, help="Batch size of ugn predict."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", min=1, help="Decoding threads of ugn predict."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Compute threads for both paths (default: torch's)."),
    modality: str = typer.Option("face", "--modality", "-m", help="Modality given to the model."),
    rounds: int = typer.Option(3, "--rounds", min=1, help="Alternating rounds; each path keeps its best."),
) -> None:
    """Images/s of ugn predict (PyTorch and onnxruntime engines) vs. open-transform-forward one image at a time."""
    import torch
    from rich.console import Console
    from rich.table import Table

    from unifiedgender.inference.bench import bench_images, run_predict_benchmark

    if threads is not None:
        torch.set_num_threads(threads)
    paths = bench_images(folder, n_images)
    result = run_predict_benchmark(
        paths, checkpoint, arch=arch, backbone=backbone, batch_size=batch_size, workers=workers, modality=modality,
        rounds=rounds,
    )
    table = Table(title=f"ugn bench predict · {result.model} · {result.n_images} images · CPU, {result.threads} threads")
    for column in ("path", "images/s", "vs. baseline"):
        table.add_column(column, justify="right" if column != "path" else "left")
    table.add_row("baseline: PIL open + transform + forward, batch 1", f"{result.baseline_images_per_s:.1f}", "1.00x")
    for engine, speed in result.engines_images_per_s.items():
        table.add_row(f"ugn predict, engine {engine}, batch {result.batch_size}, {result.workers} decoders", f"{speed:.1f}",
                      f"{result.speedup(engine):.2f}x")
    console = Console()
    console.print(table)
    console.print(f"best of {result.rounds} alternating rounds; max |prob difference| vs. baseline {result.max_abs_diff:.1e}",
                  highlight=False)
