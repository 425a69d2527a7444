"""`ugn demo`: the whole pipeline on the bundled sample."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from unifiedgender.cli.options import old_output_option, pick_output


def demo(
    output: Path = typer.Option(Path("demo_output"), "--output", "-o", help="Folder for everything the demo writes."),
    out_old: Optional[Path] = old_output_option("--out"),
    epochs: int = typer.Option(6, "--epochs", min=1, help="Training epochs."),
    image_size: int = typer.Option(160, "--image-size", min=32, help="Training and evaluation input size (px)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split and of training."),
    pretrained: str = typer.Option("default", "--pretrained", help="default (offline EfficientNet-Lite0 weights) or none."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier demo run in --output."),
) -> None:
    """Split the bundled sample by subject, train a UMCC model on hands and faces, evaluate with fairness
    breakdowns, predict a folder, and print where everything is."""
    from unifiedgender.cli.render import make_console
    from unifiedgender.demo import DemoSettings, run_demo

    run_demo(DemoSettings(pick_output(None, out_old, "--out") or output, epochs, image_size, seed, pretrained, overwrite), make_console())
