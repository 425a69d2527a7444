"""`ugn download dataset | checkpoints | metrics`: the UnifiedGenderNet release files, checked, verified, resumable."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True)

URL_HELP = "Mirror base URL: files are fetched from URL/<dest> (a query string stays at the end; overrides UGN_DOWNLOAD_BASE_URL; default Google Drive)."
ROOT_HELP = "Folder that receives data/, checkpoints/ and metrics/."


@app.command("dataset")
def dataset(
    url: Optional[str] = typer.Option(None, "--url", help=URL_HELP),
    root: Path = typer.Option(Path("."), "--root", help=ROOT_HELP),
) -> None:
    """aligned_dataset.zip (unpacked safely) and train/val/test.csv into data/."""
    _run("dataset", (), url, root)


@app.command("checkpoints")
def checkpoints(
    best_umcc: bool = typer.Option(False, "--best-umcc", help="Only the best UMCC checkpoint."),
    best_mag: bool = typer.Option(False, "--best-mag", help="Only the best MAG checkpoint."),
    url: Optional[str] = typer.Option(None, "--url", help=URL_HELP),
    root: Path = typer.Option(Path("."), "--root", help=ROOT_HELP),
) -> None:
    """Every checkpoint of the release's Drive folder (or only --best-umcc / --best-mag) into checkpoints/."""
    tags = tuple(tag for tag, wanted in (("best-umcc", best_umcc), ("best-mag", best_mag)) if wanted)
    _run("checkpoints", tags, url, root)


@app.command("metrics")
def metrics(
    url: Optional[str] = typer.Option(None, "--url", help=URL_HELP),
    root: Path = typer.Option(Path("."), "--root", help=ROOT_HELP),
) -> None:
    """final_metrics_with_full_configurations.csv into metrics/."""
    _run("metrics", (), url, root)


def _run(group: str, tags: tuple[str, ...], url: str | None, root: Path) -> None:
    """Fetch every selected file, checked and verified, reporting each."""
    from unifiedgender.data.download import fetch, release_files, resolve_base_url

    base_url = resolve_base_url(url)
    with _Progress() as progress:
        for remote in release_files(group, tags, base_url, root, log=progress.log):
            outcome = fetch(remote, root, base_url, progress=progress.update, log=progress.log)
            verb = {"downloaded": "downloaded", "skipped": "present and verified, skipped",
                    "unverified": "present, skipped (no checksum known to verify it)"}[outcome.status]
            progress.log(f"{outcome.path}: {verb}")
            if outcome.unpacked is not None:
                progress.log(f"{outcome.path}: unpacked {outcome.unpacked} files into {root / remote.extract_to}")


class _Progress:
    """A rich progress bar per file on a terminal; plain start/finish lines otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> "_Progress":
        if self.tty:
            from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

            self.bar = Progress("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn())
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.tty:
            self.bar.__exit__(*exc)

    def update(self, name: str, done: int, total: int | None) -> None:
        if name not in self.tasks:
            self.tasks[name] = self.bar.add_task(name, total=total) if self.tty else 0
            if not self.tty:
                self.log(f"downloading {name}" + (f" ({total:,} bytes)" if total else ""))
        if self.tty:
            self.bar.update(self.tasks[name], completed=done, total=total)

    def log(self, message: str) -> None:
        if self.tty:
            self.bar.console.print(message, highlight=False)
        else:
            typer.echo(message)
