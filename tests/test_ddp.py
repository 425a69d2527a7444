"""Two-process DDP on CPU (gloo) through torchrun: ranks agree, validation gathered exactly once, rank 0 writes."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from test_train_support import TINY, make_manifests, signal_at, subprocess_env


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path):
    train, val = make_manifests(tmp_path / "data", n_train=12, n_val=7)  # 7 = uneven: the sampler pads one rank
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "unifiedgender", "train", "--tag", f"{TINY}_F0_Af_Lb_Z0", "--arch", "classifier",
           "--train", str(train), "--val", str(val), "--out", str(out), "--epochs", "1", "--batch-size", "2",
           "--image-size", "32", "--pretrained", "none", "--workers", "0"]
    result = subprocess.run(cmd, env=subprocess_env(tmp_path), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "replicas in sync across 2 ranks: yes" in result.stdout
    assert result.stdout.count("epoch 1/1 train_loss") == 1  # only rank 0 reports
    assert {p.name for p in out.iterdir()} == {"config.yaml", "train.log", "history.csv", "training_curves.png",
                                               "best.pt", "last.pt", "val_predictions.csv"}
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == [1]
    assert (history["train_images"] == 12).all()  # both ranks' shards counted, nothing twice
    predictions = pd.read_csv(out / "val_predictions.csv")
    assert len(predictions) == 7 and predictions["path"].is_unique and predictions["prob_male"].notna().all()
    assert (out / "train.log").read_text().count(f" run {TINY}") == 1


@pytest.mark.slow
def test_sigterm_to_torchrun_saves_once_for_both_ranks_and_resume_auto_finishes(tmp_path):
    """The cluster path: SIGTERM reaches torchrun, which passes it to both ranks; they agree on one step, rank 0
    writes last.pt, both exit; the same command with --resume auto then finishes the run with the ranks in sync."""
    import signal

    import torch

    train, val = make_manifests(tmp_path / "data", n_train=16, n_val=7)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "unifiedgender", "train", "--resume", "auto", "--tag", f"{TINY}_F0_Af_Lb_Z0", "--arch", "classifier",
           "--train", str(train), "--val", str(val), "--output", str(out), "--epochs", "2", "--batch-size", "2",
           "--image-size", "32", "--pretrained", "none", "--workers", "0", "--log-every-steps", "1"]
    code, text = signal_at(cmd, tmp_path, "epoch 2/2 step 1/4", signal.SIGTERM)
    assert code != 0 and "SIGTERM received: training state saved at epoch 2 step" in text, text
    state = torch.load(out / "last.pt", weights_only=True)["resume"]
    # the ranks compare stop flags every 10 steps and at an epoch's last step: here step 4 of 4
    assert state["epoch"] == 1 and state["progress"]["step"] == 4 and state["world_size"] == 2

    resumed = subprocess.run(cmd, env=subprocess_env(tmp_path), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resumed at epoch 2 step {state['progress']['step']}" in resumed.stdout
    assert "replicas in sync across 2 ranks: yes" in resumed.stdout
    assert list(pd.read_csv(out / "history.csv")["epoch"]) == [1, 2]


@pytest.mark.slow  # two torchrun processes per case, about 20 s each
@pytest.mark.parametrize("arch, extras, setting", [("mag", "_gating=hard", "modality_lambda: 0"),
                                                    ("multitask", "", "age_weight: 0")])
def test_ddp_with_parameters_that_get_no_gradient(tmp_path, arch, extras, setting):
    """MAG hard gating with modality weight 0 and multitask with age weight 0 leave parameters unused:
    without find_unused_parameters DDP fails on the second step."""
    train, val = make_manifests(tmp_path / "data", n_train=12, n_val=6)
    out = tmp_path / "run"
    (tmp_path / "weights.yaml").write_text(setting + "\n")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "unifiedgender", "train", "--config", str(tmp_path / "weights.yaml"),
           "--tag", f"{TINY}_F0_An_Lb_Z0{extras}", "--arch", arch,
           "--train", str(train), "--val", str(val), "--out", str(out), "--epochs", "1", "--batch-size", "2",
           "--image-size", "32", "--pretrained", "none", "--workers", "0"]
    result = subprocess.run(cmd, env=subprocess_env(tmp_path), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "replicas in sync across 2 ranks: yes" in result.stdout
    assert (pd.read_csv(out / "history.csv")["train_images"] == 12).all()  # 3 steps per rank
