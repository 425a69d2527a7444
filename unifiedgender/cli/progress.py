"""Progress of a command over many images: a rich bar on a terminal, a plain line every 10 s otherwise (logs)."""

from __future__ import annotations

from typing import Any

import typer

PLAIN_LOG_EVERY_S = 10.0


class ImageProgress:
    """`start(total)`, `record(record)` per image, `stop()`. With `print_records` each record is also echoed as
    a line (`ugn predict` without -o)."""

    def __init__(self, label: str, print_records: bool = False) -> None:
        self.label = label
        self.print_records = print_records
        self.progress: Any = None
        self.task: Any = None
        self.done = 0
        self.total = 0
        self.last_log = 0.0
        self.started = 0.0

    def start(self, total: int) -> None:
        import time

        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.total, self.last_log, self.started = total, time.monotonic(), time.monotonic()
        console = Console(stderr=True)
        if console.is_terminal:
            self.progress = Progress(
                TextColumn(self.label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
            )
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=total)
        else:
            typer.echo(f"{self.label} {total} images", err=True)

    def record(self, record: dict[str, Any]) -> None:
        """One record; with `ugn predict --detect face` a photo gives one record per face (`face` 1, 2, ...),
        and only its first advances the count of images."""
        import time

        if self.print_records:
            line = _record_line(record)
            (self.progress.console.print(line, markup=False, highlight=False) if self.progress else typer.echo(line))
        if record.get("face") not in (None, 1):
            return
        self.done += 1
        if self.progress is not None:
            self.progress.advance(self.task)
        elif time.monotonic() - self.last_log >= PLAIN_LOG_EVERY_S:
            self.last_log = time.monotonic()
            typer.echo(f"{self.done}/{self.total} images", err=True)

    def stop(self) -> None:
        import time

        if self.progress is not None:
            self.progress.stop()
        elif self.total:
            typer.echo(f"{self.done}/{self.total} images in {time.monotonic() - self.started:.1f} s", err=True)


def _record_line(record: dict[str, Any]) -> str:
    """`pred<TAB>confidence<TAB>path` (a failed or faceless image: its status last; a face: its box)."""
    from unifiedgender.crop.face import STATUS_NO_FACE

    text = f"{record['pred']}\t{record['confidence']:.3f}" if record["status"] == "ok" else "failed\t"
    if record["status"] == STATUS_NO_FACE:
        text = "no face\t"
    if record.get("face") is not None:
        text += f"\tface {record['face']} at {record['x0']},{record['y0']},{record['x1']},{record['y1']}"
    return f"{text}\t{record['path']}" + ("" if record["status"] == "ok" else f"\t{record['status']}")
