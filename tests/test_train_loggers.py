"""`ugn train --logger tensorboard | mlflow`: history, config and final metrics read back from what they wrote."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from test_train_support import make_manifests
from unifiedgender.cli.app import app
from unifiedgender.errors import UserError


def _train(tmp_path, *extra: str):
    train, val = make_manifests(tmp_path / "data")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train", "--tag", "simple_cnn_F0_An_Lb_Z0", "--arch", "simple_cnn", "--train", str(train), "--val", str(val),
        "--output", str(out), "--epochs", "2", "--batch-size", "4", "--image-size", "24", "--pretrained", "none",
        "--workers", "0", "--cache", "memory", "--early-stop-patience", "0", *extra])
    return result, out


@pytest.mark.slow
def test_tensorboard_event_file_holds_history_config_and_final_metrics(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result, out = _train(tmp_path, "--logger", "tensorboard")
    assert result.exit_code == 0, result.output
    history = pd.read_csv(out / "history.csv")  # CSV stays
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0}).Reload()
    for key in ("train_loss", "val_loss", "val_balanced_acc", "lr"):
        scalars = events.Scalars(key)
        assert [s.step for s in scalars] == [1, 2]
        assert [s.value for s in scalars] == pytest.approx(history[key].tolist(), rel=1e-6)
    final = events.Scalars("final/best_val_balanced_acc")
    assert final[0].value == pytest.approx(history["val_balanced_acc"].max(), rel=1e-6)
    config_text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert yaml.safe_load(config_text.strip("`\n"))["tag"] == "simple_cnn_F0_An_Lb_Z0"


@pytest.mark.slow
def test_mlflow_file_store_holds_history_config_and_final_metrics(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result, out = _train(tmp_path, "--logger", "mlflow")
    assert result.exit_code == 0, result.output
    history = pd.read_csv(out / "history.csv")
    client = MlflowClient(tracking_uri=(out / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("unifiedgender")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "simple_cnn_F0_An_Lb_Z0" and run.info.status == "FINISHED"
    assert run.data.params["arch"] == "simple_cnn" and run.data.params["epochs"] == "2"
    for key in ("train_loss", "val_balanced_acc"):
        steps = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in steps] == [1, 2]
        assert [m.value for m in steps] == pytest.approx(history[key].tolist(), rel=1e-6)
    assert run.data.metrics["final_best_val_balanced_acc"] == pytest.approx(history["val_balanced_acc"].max())


def test_unknown_logger_is_refused_before_any_folder(tmp_path):
    result, out = _train(tmp_path, "--logger", "wandb")
    assert isinstance(result.exception, UserError) and "unknown logger 'wandb'" in str(result.exception)
    assert not out.exists()
