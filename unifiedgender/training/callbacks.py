"""A few named events carry early stopping, LR reduction, checkpoints, history and plots.

Events: `on_epoch_end(run, epoch, metrics)`, `on_model_saved(run, path, kind)` and `on_train_end(run, summary)`
(after the last epoch; not when a stop signal interrupts the run). `run` is the Trainer, seen through
`TrainingRun`: its runtime, `should_stop`, `log()` and `save_best()`; callbacks touch nothing else of it.
Callbacks that decide something keep their state in `state_dict()`, which goes into the last checkpoint, so a
resumed run decides the same way. Only rank 0 writes files.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Protocol

from unifiedgender.fileio import atomic_path, atomic_write


class TrainingRun(Protocol):
    """What callbacks may use of the run (the Trainer)."""

    runtime: Any  # unifiedgender.runtime.Runtime
    should_stop: bool

    def log(self, message: str) -> None: ...

    def save_best(self, epoch: int, metrics: dict[str, float]) -> None:
        """best.pt (and val_predictions.csv) from the epoch's validation; `epoch` 1-based."""


class Callback:
    """Base class: override the events you need."""

    def on_epoch_end(self, run: TrainingRun, epoch: int, metrics: dict[str, float]) -> None:
        pass

    def on_model_saved(self, run: TrainingRun, path: Path, kind: str) -> None:
        pass

    def on_train_end(self, run: TrainingRun, summary: dict[str, float]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def _score(value: float | None, mode: str) -> float:
    """NaN or missing counts as the worst possible value."""
    if value is None or math.isnan(value):
        return -math.inf
    return value if mode == "max" else -value


class _Monitor(Callback):
    def __init__(self, metric: str, mode: str) -> None:
        if mode not in ("max", "min"):
            raise ValueError("mode must be 'max' or 'min'")
        self.metric, self.mode = metric, mode
        self.best: float = -math.inf

    def improved(self, metrics: dict[str, float]) -> bool:
        score = _score(metrics.get(self.metric), self.mode)
        if score > self.best:
            self.best = score
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])


class EarlyStopping(_Monitor):
    """Stop when `metric` has not improved for `patience` epochs."""

    def __init__(self, metric: str = "val_balanced_acc", mode: str = "max", patience: int = 5) -> None:
        super().__init__(metric, mode)
        self.patience, self.wait = patience, 0

    def on_epoch_end(self, run: TrainingRun, epoch: int, metrics: dict[str, float]) -> None:
        if self.improved(metrics):
            self.wait = 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            run.should_stop = True
            run.log(f"early stopping: {self.metric} has not improved for {self.patience} epochs")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait = float(state["best"]), int(state["wait"])


class ReduceLROnPlateau(Callback):
    """torch's ReduceLROnPlateau stepped on a validation metric at each epoch end (the `plateau` scheduler)."""

    def __init__(self, optimizer: Any, metric: str = "val_loss", mode: str = "min", factor: float = 0.1,
                 patience: int = 2) -> None:
        import torch

        self.metric = metric
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=factor, patience=patience)

    def on_epoch_end(self, run: TrainingRun, epoch: int, metrics: dict[str, float]) -> None:
        value = metrics.get(self.metric)
        if value is not None and not math.isnan(value):
            self.scheduler.step(value)

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


class BestCheckpoint(_Monitor):
    """Save best.pt (and val_predictions.csv) whenever `metric` improves; the checkpoint records the 1-based epoch."""

    def __init__(self, metric: str = "val_balanced_acc", mode: str = "max") -> None:
        super().__init__(metric, mode)

    def on_epoch_end(self, run: TrainingRun, epoch: int, metrics: dict[str, float]) -> None:
        if self.improved(metrics):
            run.save_best(epoch + 1, metrics)


class History(Callback):
    """history.csv: one row per epoch (losses, acc, balanced accuracy, AUC, lr, seconds, images/s)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, float]] = []

    def on_epoch_end(self, run: TrainingRun, epoch: int, metrics: dict[str, float]) -> None:
        self.rows.append({"epoch": epoch + 1, **metrics})  # 1-based, as in the log
        if run.runtime.is_main_process:
            self.write()

    def write(self) -> None:
        columns: list[str] = []
        for row in self.rows:
            columns += [c for c in row if c not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        with atomic_write(self.path, newline="") as handle:
            handle.write(buffer.getvalue())

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state["rows"]]


class CurvePlot(Callback):
    """training_curves.png: loss, balanced accuracy / AUC and learning rate per epoch."""

    def __init__(self, history: History, path: Path) -> None:
        self.history, self.path = history, Path(path)

    def on_epoch_end(self, run: TrainingRun, epoch: int, metrics: dict[str, float]) -> None:
        if run.runtime.is_main_process:
            plot_history(self.history.rows, self.path)


def plot_history(rows: list[dict[str, float]], path: Path) -> None:
    """Three panels from history rows, written atomically as a PNG (an Agg canvas: no pyplot, no global backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in rows]
    fig = Figure(figsize=(13, 3.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    panels = (("loss", ("train_loss", "val_loss")), ("metric", ("train_acc", "val_acc", "val_balanced_acc", "val_auc")),
              ("learning rate", ("lr",)))
    for ax, (title, keys) in zip(axes, panels):
        for key in keys:
            if any(key in r for r in rows):
                ax.plot(epochs, [r.get(key, math.nan) for r in rows], marker="o", label=key)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
