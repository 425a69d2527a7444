"""Resume after a real SIGKILL mid-epoch: the resumed run ends exactly where an uninterrupted run does."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch

from test_train_support import TINY, make_manifests, run_ugn, signal_at, subprocess_env, ugn_command

TIMING = ["train_seconds", "images_per_s"]


def _args(train, val, out, *extra):
    return ["train", "--tag", f"{TINY}_F1_Af_Lb_Z0_seed7", "--arch", "umcc", "--train", str(train), "--val", str(val),
            "--out", str(out), "--epochs", "2", "--batch-size", "2", "--image-size", "32", "--pretrained", "none",
            "--workers", "0", "--cache", "disk", "--scheduler", "cosine", *extra]


def _start_reference(tmp_path: Path) -> tuple[Path, Path, subprocess.Popen]:
    """Manifests and the uninterrupted reference run, started in the background (beside the run to stop)."""
    train, val = make_manifests(tmp_path / "data", n_train=16, n_val=5)
    reference = subprocess.Popen(ugn_command(*_args(train, val, tmp_path / "reference")), env=subprocess_env(tmp_path),
                                 cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return train, val, reference


@pytest.mark.slow
def test_resume_after_sigkill_mid_epoch_matches_an_uninterrupted_run(tmp_path):
    train, val, reference = _start_reference(tmp_path)
    killed_dir = tmp_path / "killed"
    cmd = ugn_command(*_args(train, val, killed_dir, "--save-every-steps", "3", "--log-every-steps", "1"))
    # killed once epoch 1 is complete (last.pt exists) and epoch 2 is under way
    code, text = signal_at(cmd, tmp_path, "epoch 2/2 step 4/8", signal.SIGKILL)
    assert code == -signal.SIGKILL, text
    state = torch.load(killed_dir / "last.pt", weights_only=True)["resume"]
    assert state["epoch"] == 1 and 3 <= state["progress"]["step"] < 8  # killed mid-epoch 2, after a step save
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    assert len(pd.read_csv(killed_dir / "history.csv")) == 1

    resumed = run_ugn(tmp_path, "train", "--resume", str(killed_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed at epoch 2 step {state['progress']['step']}" in resumed.stdout

    _assert_same_run(killed_dir, tmp_path / "reference")


def _assert_same_run(got: Path, reference: Path) -> None:
    """History (without timings), final weights and validation predictions equal bit for bit."""
    expected = pd.read_csv(reference / "history.csv").drop(columns=TIMING)
    pd.testing.assert_frame_equal(pd.read_csv(got / "history.csv").drop(columns=TIMING), expected, check_exact=True)
    ref_state = torch.load(reference / "last.pt", weights_only=True)["state_dict"]
    got_state = torch.load(got / "last.pt", weights_only=True)["state_dict"]
    assert ref_state.keys() == got_state.keys()
    for key, tensor in ref_state.items():
        assert torch.equal(tensor, got_state[key]), key
    pd.testing.assert_frame_equal(pd.read_csv(got / "val_predictions.csv"),
                                  pd.read_csv(reference / "val_predictions.csv"), check_exact=True)


def test_resume_refusals(tmp_path):
    from typer.testing import CliRunner

    from unifiedgender.cli.app import app
    from unifiedgender.errors import UserError

    missing = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / "nope")])
    assert isinstance(missing.exception, UserError) and "nothing to resume" in str(missing.exception)
    changed = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / "nope"), "--lr", "0.1"])
    assert isinstance(changed.exception, UserError) and "drop --lr" in str(changed.exception)


@pytest.mark.slow
def test_sigterm_saves_mid_epoch_and_resume_auto_matches_an_uninterrupted_run(tmp_path):
    train, val, reference = _start_reference(tmp_path)
    env = subprocess_env(tmp_path)
    run_dir = tmp_path / "stopped"
    # the command a requeued Slurm job runs: the same each time, --resume auto (a fresh start the first time)
    command = ugn_command(*_args(train, val, run_dir, "--log-every-steps", "1", "--resume", "auto"))
    # no --save-every-steps: only the signal makes the mid-epoch save
    code, text = signal_at(command, tmp_path, "epoch 2/2 step 5/8", signal.SIGTERM)
    assert code == 75 and "SIGTERM received: training state saved at epoch 2 step" in text, text
    state = torch.load(run_dir / "last.pt", weights_only=True)["resume"]
    assert state["epoch"] == 1 and 5 <= state["progress"]["step"] < 8
    assert reference.wait(timeout=300) == 0, reference.stderr.read()

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed at epoch 2 step {state['progress']['step']}" in resumed.stdout

    _assert_same_run(run_dir, tmp_path / "reference")

    other = subprocess.run(ugn_command(*_args(train, val, run_dir, "--resume", "auto", "--lr", "0.5")), env=env,
                           capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert other.returncode == 2 and "holds a run with lr=0.0001, but this command gives 0.5" in other.stderr


def test_stop_signals_are_caught_while_active_and_restored_after():
    import os

    from unifiedgender.training.preemption import StopSignals

    before = signal.getsignal(signal.SIGUSR1)
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.received == "SIGUSR1"  # the first one is reported
    assert signal.getsignal(signal.SIGUSR1) is before
