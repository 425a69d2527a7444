"""`ugn bench` commands: training data path (`train`), prediction throughput (`predict`), the GPU check (`all`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from unifiedgender.cli.options import device_option

app = typer.Typer(no_args_is_help=True)


@app.command("train")
def bench_train(
    arch: str = typer.Option("classifier", "--arch", help="Architecture to train."),
    backbone: Optional[str] = typer.Option(None, "--backbone", help="Backbone [default: resnet18]."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Batch size [default: 256 on GPU, 16 on CPU]."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Input size [default: 224 on GPU, 64 on CPU]."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Timed steps per path [default: 50 on GPU, 5 on CPU]."),
    device: str = device_option(),
    precision: str = typer.Option("auto", "--precision", help="auto | bf16 | fp16 | fp32."),
    workers: Optional[int] = typer.Option(None, "--workers", help="DataLoader workers for the PIL path [default: 4 on GPU, 2 on CPU]."),
    source_size: int = typer.Option(512, "--source-size", help="Side of the synthetic JPEGs the pipelines decode."),
    rounds: int = typer.Option(2, "--rounds", help="Interleaved rounds (a, b, c, a, b, c ...); the best of each path counts."),
) -> None:
    """Training images/s: (a) synthetic tensors, (b) decoded cache + device augmentation, (c) PIL + DataLoader."""
    from rich.table import Table

    from unifiedgender.cli.render import make_console
    from unifiedgender.training.bench import run_train_bench

    console = make_console()
    report = run_train_bench(arch, backbone, batch_size, image_size, steps, device, precision, workers,
                             rounds=rounds, source_size=source_size, log=lambda m: console.print(m, highlight=False))
    labels = {"synthetic": "(a) synthetic tensors on the device", "project": "(b) decoded cache + device augmentation",
              "pil": f"(c) PIL + DataLoader, {report['workers']} workers"}
    table = Table(title=f"training throughput on {report['device_name']} ({report['precision']})")
    table.add_column("input path")
    table.add_column("images/s", justify="right")
    table.add_column("seconds", justify="right")
    for row in report["results"]:
        table.add_row(labels[row["name"]], f"{row['images_per_s']:.1f}", f"{row['seconds']:.2f}")
    console.print(table)
    console.print(f"b/a = {report['ratio_project_vs_synthetic']:.2f}   b/c = {report['ratio_project_vs_pil']:.2f}   "
                  f"(decoded cache built once in {report['cache_build_seconds']:.1f}s)")


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
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N (a GPU times the torch engine)."),
) -> None:
    """Images/s of ugn predict vs. open-transform-forward one image at a time and vs. the model's own ceiling."""
    import torch
    from rich.table import Table

    from unifiedgender.cli.render import make_console
    from unifiedgender.inference.bench import bench_images, run_predict_benchmark

    if threads is not None:
        torch.set_num_threads(threads)
    paths = bench_images(folder, n_images)
    result = run_predict_benchmark(
        paths, checkpoint, arch=arch, backbone=backbone, batch_size=batch_size, workers=workers, modality=modality,
        rounds=rounds, device=device,
    )
    where = f"{result.threads} threads" if result.device == "cpu" else f"{result.device}, {result.threads} CPU threads"
    table = Table(title=f"ugn bench predict · {result.model} · {result.n_images} images · {where}")
    for column in ("path", "images/s", "vs. baseline", "of ceiling"):
        table.add_column(column, justify="right" if column != "path" else "left")
    table.add_row("baseline: PIL open + transform + forward, batch 1", f"{result.baseline_images_per_s:.1f}", "1.00x", "")
    for engine, speed in result.engines_images_per_s.items():
        table.add_row(f"ugn predict, engine {engine}, batch {result.batch_size}, {result.workers} decoders", f"{speed:.1f}",
                      f"{result.speedup(engine):.2f}x", f"{result.of_ceiling(engine):.2f}")
        table.add_row(f"ceiling: engine {engine} on ready batches", f"{result.ceiling_images_per_s[engine]:.1f}", "", "1.00")
    console = make_console()
    console.print(table)
    console.print(f"best of {result.rounds} alternating rounds; max |prob difference| vs. baseline {result.max_abs_diff:.1e}",
                  highlight=False)


@app.command("all")
def bench_all(
    output: Path = typer.Option(Path("gpu_check.json"), "--output", "-o", help="Result file (JSON; a .md twin is written beside it)."),
    data: Optional[Path] = typer.Option(None, "--data", help="LFW folder for the predict and training phases [default: $UGN_DATA/lfw_gender, shared/data or ../shared/data on a GPU; sample faces in a dry run]."),
    device: str = typer.Option("auto", "--device", help="auto | cuda | cuda:N (cpu = a dry run)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and run every phase on the CPU with tiny settings (seconds)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing result file and its work folder."),
) -> None:
    """The prepared GPU check: bench train, sync count, bench predict, a short real training + evaluate."""
    import sys

    from unifiedgender.gpu_check import run_gpu_check

    command = " ".join(["ugn bench all", *sys.argv[sys.argv.index("all") + 1:]]) if "all" in sys.argv else "ugn bench all"
    report = run_gpu_check(output, data=data, dry_run=dry_run, overwrite=overwrite, device=device, command=command,
                           log=lambda m: print(m, flush=True))
    failed = [p.name for p in report.phases if p.status != "ok"]
    print(f"wrote {output} and {output.with_suffix('.md')}" + (f"; failed phases: {', '.join(failed)}" if failed else ""))
    if failed:
        raise typer.Exit(1)
