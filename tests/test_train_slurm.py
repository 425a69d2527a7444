"""Slurm scripts: valid bash, every one calls `ugn`, the sweep picks the array task's tag (dry run)."""

import os
import subprocess
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "scripts" / "slurm").glob("*.sbatch"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_is_valid_bash_and_calls_ugn(script):
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert "ugn" in script.read_text() and "#SBATCH" in script.read_text()


def _dry_run(tmp_path, script, *args, **env):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    (fake_bin / "ugn").write_text("#!/bin/sh\n")
    (fake_bin / "ugn").chmod(0o755)
    full_env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}", "UGN_DRY_RUN": "1",
                "UGN_RUNS": str(tmp_path / "runs"), **env}
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=full_env, cwd=tmp_path)


def test_sweep_array_selects_the_tag_of_its_task(tmp_path):
    tags = tmp_path / "tags.txt"
    tags.write_text("# sweep\nresnet18.a1_in1k_F0_Af_Lb_Z0\n\nresnet18.a1_in1k_F1_Af_Lf_Z0 umcc\nx_F0_An_Lb_Z0 mag\n")
    script = next(s for s in SCRIPTS if s.name == "sweep_array.sbatch")
    result = _dry_run(tmp_path, script, str(tags), "train.csv", "val.csv", "--epochs", "3", SLURM_ARRAY_TASK_ID="3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ugn", "train", "--tag", "x_F0_An_Lb_Z0", "--arch", "mag", "--train", "train.csv",
                                     "--val", "val.csv", "--out", str(tmp_path / "runs" / "x_F0_An_Lb_Z0"), "--epochs", "3"]
    (tmp_path / "runs" / "x_F0_An_Lb_Z0").mkdir(parents=True)
    (tmp_path / "runs" / "x_F0_An_Lb_Z0" / "last.pt").write_bytes(b"")
    resumed = _dry_run(tmp_path, script, str(tags), "train.csv", "val.csv", SLURM_ARRAY_TASK_ID="3")
    assert "--resume" in resumed.stdout
    missing = _dry_run(tmp_path, script, str(tags), "train.csv", "val.csv", SLURM_ARRAY_TASK_ID="9")
    assert missing.returncode == 2 and "no tag on line 9" in missing.stderr


def test_one_node_script_runs_torchrun_with_one_process_per_gpu(tmp_path):
    script = next(s for s in SCRIPTS if s.name == "train_1node.sbatch")
    result = _dry_run(tmp_path, script, "t_F0_Af_Lb_Z0", "umcc", "tr.csv", "va.csv", SLURM_GPUS_ON_NODE="4")
    assert result.returncode == 0, result.stderr
    words = result.stdout.split()
    assert words[:4] == ["torchrun", "--standalone", "--nproc_per_node", "4"] and words[4].endswith("/ugn")
    assert _dry_run(tmp_path, script, "only-a-tag").returncode == 2


def test_multinode_script_passes_cpus_per_task_to_srun_and_caches_on_scratch(tmp_path):
    """A fake srun (the real job step) sees SRUN_CPUS_PER_TASK and the cache folder on $SCRATCH."""
    script = next(s for s in SCRIPTS if s.name == "train_multinode.sbatch")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "scontrol").write_text("#!/bin/sh\necho node1\necho node2\n")
    (fake_bin / "srun").write_text('#!/bin/sh\necho "cpus=$SRUN_CPUS_PER_TASK cache=$UGN_CACHE_DIR $*"\n')
    for tool in ("scontrol", "srun"):
        (fake_bin / tool).chmod(0o755)
    result = _dry_run(tmp_path, script, "t_F0_Af_Lb_Z0", "umcc", "tr.csv", "va.csv", UGN_DRY_RUN="", UGN_CACHE_DIR="",
                      SLURM_CPUS_PER_TASK="12", SLURM_NNODES="2", SLURM_JOB_ID="7", SLURM_JOB_NODELIST="node[1-2]",
                      SCRATCH=str(tmp_path / "scratch"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"cpus=12 cache={tmp_path / 'scratch'}/.ugn-cache ")
    assert "torchrun --nnodes 2" in result.stdout and "--rdzv_endpoint node1:29500" in result.stdout
