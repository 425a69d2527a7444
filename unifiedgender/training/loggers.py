"""Experiment trackers beside history.csv: `--logger tensorboard | mlflow` (csv, the default, adds nothing).

Each records the resolved configuration when training starts, every epoch's history row (step = 1-based epoch)
and the final metrics when it ends. Only rank 0 logs. TensorBoard writes event files to RUN/tensorboard/;
MLflow logs to $MLFLOW_TRACKING_URI when set, else to a file store in RUN/mlruns (experiment
$MLFLOW_EXPERIMENT_NAME or "unifiedgender", run name = the tag) and continues the same MLflow run on resume.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from unifiedgender.errors import UserError
from unifiedgender.training.callbacks import Callback
from unifiedgender.training.config import LOGGERS
PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow-skinny")}


def check_logger(name: str) -> None:
    """Refuse an unknown logger or one whose package is missing (before the run folder is made)."""
    import importlib.util

    if name not in LOGGERS:
        raise UserError(f"unknown logger '{name}'; use one of {', '.join(LOGGERS)}")
    if name in PACKAGES and importlib.util.find_spec(PACKAGES[name][0]) is None:
        raise UserError(f"--logger {name} needs the {PACKAGES[name][1]} package: pip install 'unifiedgender[{name}]'")


def create_logger(name: str, run_dir: Path) -> Callback | None:
    """The tracker callback for --logger NAME (None for csv: history.csv is always written)."""
    check_logger(name)
    kinds = {"tensorboard": TensorBoardLogger, "mlflow": MlflowLogger}
    return kinds[name](Path(run_dir)) if name in kinds else None


def _finite(metrics: dict[str, Any]) -> dict[str, float]:
    """Numeric, finite values only (trackers refuse NaN or text)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value)):
            out[key] = float(value)
    return out


class TensorBoardLogger(Callback):
    """Scalars per epoch, the configuration as text, final metrics under final/."""

    def __init__(self, run_dir: Path) -> None:
        self.log_dir = run_dir / "tensorboard"
        self.writer: Any = None

    def _open(self, run: Any) -> Any:
        if self.writer is None:
            import yaml
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.log_dir))
            config = yaml.safe_dump(run.config.to_dict(), sort_keys=False)
            self.writer.add_text("config", "```\n" + config + "```")
        return self.writer

    def on_epoch_end(self, run: Any, epoch: int, metrics: dict[str, float]) -> None:
        if run.runtime.is_main_process:
            writer = self._open(run)
            for key, value in _finite(metrics).items():
                writer.add_scalar(key, value, epoch + 1)
            writer.flush()

    def on_train_end(self, run: Any, summary: dict[str, float]) -> None:
        if run.runtime.is_main_process:
            writer = self._open(run)
            for key, value in _finite(summary).items():
                writer.add_scalar(f"final/{key}", value, int(summary.get("epochs_trained", 0)))
            writer.close()
            self.writer = None


class MlflowLogger(Callback):
    """Parameters (the configuration), metrics per epoch, final metrics as final_*; the run id goes into last.pt."""

    def __init__(self, run_dir: Path) -> None:
        self.uri = os.environ.get("MLFLOW_TRACKING_URI") or (run_dir / "mlruns").resolve().as_uri()
        self.experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME", "unifiedgender")
        self.run_id: str | None = None
        self.client: Any = None

    def _open(self, run: Any) -> Any:
        if self.client is None:
            if self.uri.startswith("file:"):  # MLflow 3 keeps its file store only on request; it is the local default here
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            from mlflow.tracking import MlflowClient

            self.client = MlflowClient(tracking_uri=self.uri)
        if self.run_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            experiment = found.experiment_id if found else self.client.create_experiment(self.experiment)
            self.run_id = self.client.create_run(experiment, run_name=run.config.tag).info.run_id
            for key, value in run.config.to_dict().items():
                self.client.log_param(self.run_id, key, "" if value is None else str(value))
            run.log(f"mlflow: run {self.run_id} in {self.uri}")
        return self.client

    def on_epoch_end(self, run: Any, epoch: int, metrics: dict[str, float]) -> None:
        if run.runtime.is_main_process:
            client = self._open(run)
            for key, value in _finite(metrics).items():
                client.log_metric(self.run_id, key, value, step=epoch + 1)

    def on_train_end(self, run: Any, summary: dict[str, float]) -> None:
        if run.runtime.is_main_process:
            client = self._open(run)
            for key, value in _finite(summary).items():
                client.log_metric(self.run_id, f"final_{key}", value)
            client.set_terminated(self.run_id)

    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("run_id")
