"""`ugn crop`: crop images to the object SAM2 finds from central point prompts, or to the aligned face."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from unifiedgender.cli.options import device_option


def crop(
    input_path: Path = typer.Argument(..., metavar="INPUT", help="Folder of images (searched recursively) or a manifest .csv."),
    output: Path = typer.Option(..., "-o", "--output", help="Output folder: crops under the same relative paths, boxes.csv."),
    detector: str = typer.Option("sam", "--detector", help="sam (SAM2 point prompts) or face (offline face detector, aligned face chips)."),
    points: int = typer.Option(1, "--points", help="Prompt points: 1 (the centre) or 5 (the centre and four around it)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Official SAM2 checkpoint (.pt) matching --config."),
    config: str = typer.Option("sam2.1_hiera_t", "--config", help="SAM2 config name, e.g. sam2.1_hiera_t, sam2.1_hiera_l."),
    dilate: int = typer.Option(5, "--dilate", help="Dilate the mask by a disk of this radius in pixels."),
    point_spacing: float = typer.Option(0.1, "--point-spacing", help="With --points 5: distance of the outer points, as a fraction of the shorter side."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="SAM2 input size (default: the config's 1024)."),
    device: str = device_option(),
    save_masks: bool = typer.Option(False, "--save-masks", help="Also write the kept mask as masks/<path>.png."),
    preview: bool = typer.Option(False, "--preview", help="Also write previews/<path>.png with the mask and box drawn."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo crops already written instead of skipping them."),
) -> None:
    """Crop each image to the bounding box of the largest mask component SAM2 finds from central point prompts,
    or (--detector face) to the largest face, aligned with a margin to the canonical face framing.

    Exit code 0 when every image was cropped (or kept whole because its mask was empty), 1 when any image could
    not be read or written (see the status column of boxes.csv), 2 for invalid arguments.
    """
    from unifiedgender.crop.framers import FaceFramer, SamFramer
    from unifiedgender.crop.pipeline import CropOptions, prepare_crop, run_crop
    from unifiedgender.crop.sam import check_checkpoint, load_predictor
    from unifiedgender.errors import UserError

    if detector not in ("sam", "face"):
        raise UserError(f"--detector {detector!r} is not supported; use sam or face")
    if detector == "face" and (checkpoint is not None or save_masks):
        raise UserError("--checkpoint and --save-masks belong to --detector sam; drop them for --detector face")
    if detector == "sam":
        check_checkpoint(checkpoint, config)
    job = prepare_crop(input_path, output, CropOptions(points, point_spacing, dilate, save_masks, preview, overwrite))
    if detector == "face":
        framer = FaceFramer()
    else:
        predictor = load_predictor(checkpoint, config, image_size=image_size, device=device)
        framer = SamFramer(predictor, points, point_spacing, dilate)
    with _ProgressReporter() as reporter:
        summary = run_crop(framer, job, on_start=reporter.start, on_result=reporter.advance)
    counts = ", ".join(f"{n} {key}" for key, n in sorted(summary.counts.items()))
    typer.echo(f"{len(summary.results)} images: {counts}")
    typer.echo(f"boxes: {summary.boxes_csv}")
    if summary.manifest is not None:
        typer.echo(f"manifest of the crops: {summary.manifest}")
    for result in summary.failed:
        typer.echo(f"{result.path}: {result.status}", err=True)
    if summary.failed:
        raise typer.Exit(1)


class _ProgressReporter:
    """A rich progress bar on a terminal, one plain line per image otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.progress = None
        self.task = None
        self.total = 0
        self.done = 0

    def __enter__(self) -> _ProgressReporter:
        if self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("crop"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=Console(stderr=True)
            )
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def start(self, total: int) -> None:
        self.total = total
        if self.progress is not None:
            self.task = self.progress.add_task("crop", total=total)

    def advance(self, result) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress.advance(self.task)
        else:
            typer.echo(f"[{self.done}/{self.total}] {result.path}: {result.status}", err=True)
