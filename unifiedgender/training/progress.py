"""Progress output for rank 0: a rich bar (loss, images/s, ETA) on a TTY, plain log lines otherwise.

Every method that prints a log line also returns it (None when nothing was logged), so the caller can keep
it elsewhere too (the trainer appends it to train.log, training.rundir.RunLog); the reporter holds no file.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Reporter:
    """Epoch progress and log lines."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None, tty: bool | None = None,
                 log_every_steps: int = 0) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.log_every_steps = log_every_steps
        self._progress = None
        self._task = None
        self._epoch_label = ""

    def log(self, message: str) -> str | None:
        """Print `message` with a timestamp; the line printed, or None on a disabled reporter."""
        if not self.enabled:
            return None
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        if self._progress is not None:
            self._progress.console.print(line, highlight=False)
        else:
            print(line, file=self.stream, flush=True)
        return line

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int = 0) -> None:
        self._epoch_label = f"epoch {epoch + 1}/{epochs}"
        if not (self.enabled and self.tty):
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[rate]:.0f} img/s"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(file=self.stream, force_terminal=True), transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(self._epoch_label, total=steps, completed=done, loss=float("nan"), rate=0.0)

    def logs_step(self, step: int, steps: int) -> bool:
        """Whether `step` gets a log line (plain output with --log-every-steps)."""
        return (self.enabled and self._progress is None and bool(self.log_every_steps)
                and (step % self.log_every_steps == 0 or step == steps))

    def step(self, step: int, steps: int, loss: float, images_per_s: float) -> str | None:
        """Advance the bar, or log a line at the --log-every-steps steps (returned)."""
        if not self.enabled:
            return None
        if self._progress is not None:
            self._progress.update(self._task, completed=step, loss=loss, rate=images_per_s)
        elif self.logs_step(step, steps):
            return self.log(f"{self._epoch_label} step {step}/{steps} loss {loss:.4f} {images_per_s:.1f} img/s")
        return None

    def end_epoch(self, metrics: dict[str, float]) -> str | None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        keys = ("train_loss", "val_loss", "val_acc", "val_balanced_acc", "val_auc", "lr", "images_per_s")
        text = " ".join(f"{k} {metrics[k]:.4g}" for k in keys if k in metrics)
        return self.log(f"{self._epoch_label} {text}")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
