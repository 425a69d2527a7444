"""Two-process DDP on CPU (gloo) through torchrun: ranks agree, validation gathered exactly once, rank 0 writes."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from test_train_support import TINY, make_manifests, subprocess_env


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
