"""`ugn bench` commands: training data path (`train`) and prediction throughput (`predict`)."""

from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("train")
def bench_train(
    arch: str = typer.Option("classifier", "--arch", help="Architecture to train."),
    backbone: Optional[str] = typer.Option(None, "--backbone", help="Backbone [default: resnet18]."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Batch size [default: 256 on GPU, 16 on CPU]."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Input size [default: 224 on GPU, 64 on CPU]."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Timed steps per path [default: 50 on GPU, 5 on CPU]."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps."),
    precision: str = typer.Option("auto", "--precision", help="auto | bf16 | fp16 | fp32."),
    workers: Optional[int] = typer.Option(None, "--workers", help="DataLoader workers for the PIL path [default: 4 on GPU, 2 on CPU]."),
    source_size: int = typer.Option(512, "--source-size", help="Side of the synthetic JPEGs the pipelines decode."),
    rounds: int = typer.Option(2, "--rounds", help="Interleaved rounds (a, b, c, a, b, c ...); the best of each path counts."),
) -> None:
    """Training images/s: (a) synthetic tensors, (b) decoded cache + device augmentation, (c) PIL + DataLoader."""
    from rich.console import Console
    from rich.table import Table

    from unifiedgender.training.bench import run_train_bench

    console = Console()
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
