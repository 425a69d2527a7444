"""Resume after a real SIGKILL mid-epoch: the resumed run ends exactly where an uninterrupted run does."""

from __future__ import annotations

import signal
import subprocess

import pandas as pd
import pytest
import torch

from test_train_support import TINY, make_manifests, run_ugn, subprocess_env, ugn_command

TIMING = ["train_seconds", "images_per_s"]


def _args(train, val, out, *extra):
    return ["train", "--tag", f"{TINY}_F1_Af_Lb_Z0_seed7", "--arch", "umcc", "--train", str(train), "--val", str(val),
            "--out", str(out), "--epochs", "3", "--batch-size", "2", "--image-size", "32", "--pretrained", "none",
            "--workers", "0", "--cache", "disk", "--scheduler", "cosine", *extra]


@pytest.mark.slow
def test_resume_after_sigkill_mid_epoch_matches_an_uninterrupted_run(tmp_path):
    train, val = make_manifests(tmp_path / "data", n_train=20, n_val=5)
    env = subprocess_env(tmp_path)
    # the uninterrupted reference and the run to be killed run side by side (one thread each)
    reference = subprocess.Popen(ugn_command(*_args(train, val, tmp_path / "reference")), env=env, cwd=tmp_path,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killed_dir = tmp_path / "killed"
    cmd = ugn_command(*_args(train, val, killed_dir, "--save-every-steps", "3", "--log-every-steps", "1"))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    seen = []
    for line in proc.stdout:  # epoch 1 is complete (last.pt exists) and epoch 2 is under way
        seen.append(line)
        if "epoch 2/3 step 4/10" in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    state = torch.load(killed_dir / "last.pt", weights_only=True)["resume"]
    assert state["epoch"] == 1 and 3 <= state["progress"]["step"] < 10  # killed mid-epoch 2, after a step save
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    assert len(pd.read_csv(killed_dir / "history.csv")) == 1

    resumed = run_ugn(tmp_path, "train", "--resume", str(killed_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed at epoch 2 step {state['progress']['step']}" in resumed.stdout

    expected = pd.read_csv(tmp_path / "reference" / "history.csv").drop(columns=TIMING)
    got = pd.read_csv(killed_dir / "history.csv").drop(columns=TIMING)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    ref_state = torch.load(tmp_path / "reference" / "last.pt", weights_only=True)
    got_state = torch.load(killed_dir / "last.pt", weights_only=True)
    assert ref_state["state_dict"].keys() == got_state["state_dict"].keys()
    for key, tensor in ref_state["state_dict"].items():
        assert torch.equal(tensor, got_state["state_dict"][key]), key
    pd.testing.assert_frame_equal(pd.read_csv(killed_dir / "val_predictions.csv"),
                                  pd.read_csv(tmp_path / "reference" / "val_predictions.csv"), check_exact=True)


def test_resume_refusals(tmp_path):
    from typer.testing import CliRunner

    from unifiedgender.cli.app import app
    from unifiedgender.errors import UserError

    missing = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / "nope")])
    assert isinstance(missing.exception, UserError) and "nothing to resume" in str(missing.exception)
    changed = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / "nope"), "--lr", "0.1"])
    assert isinstance(changed.exception, UserError) and "drop --lr" in str(changed.exception)
