"""`ugn demo`: the whole pipeline on the bundled sample."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    out: Path = typer.Option(Path("demo_output"), "--out", "-o", help="Folder for everything the demo writes."),
    epochs: int = typer.Option(6, "--epochs", min=1, help="Training epochs."),
    image_size: int = typer.Option(160, "--image-size", min=32, help="Training and evaluation input size (px)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split and of training."),
    pretrained: str = typer.Option("default", "--pretrained", help="default (offline EfficientNet-Lite0 weights) or none."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier demo run in --out."),
) -> None:
    """Split the bundled sample by subject, train a UMCC model on hands and faces, evaluate with fairness
    breakdowns, predict a folder, and print where everything is."""
    from rich.console import Console

    from unifiedgender.demo import DemoSettings, run_demo

    run_demo(DemoSettings(out, epochs, image_size, seed, pretrained, overwrite), Console())
