"""Slurm scripts: valid bash, every one calls `ugn`, the sweep picks the array task's tag (dry run)."""

import os
import shutil
import signal
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
    full_path = env.pop("PATH", f"{fake_bin}:{os.environ['PATH']}")
    (fake_bin / "ugn").write_text("#!/bin/sh\n")
    (fake_bin / "ugn").chmod(0o755)
    full_env = {**os.environ, "PATH": full_path, "UGN_DRY_RUN": "1",
                "UGN_RUNS": str(tmp_path / "runs"), "SLURM_CPUS_PER_TASK": "8", **env}
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=full_env, cwd=tmp_path)


def test_sweep_array_selects_the_tag_of_its_task(tmp_path):
    tags = tmp_path / "tags.txt"
    tags.write_text("# sweep\nresnet18.a1_in1k_F0_Af_Lb_Z0\n\nresnet18.a1_in1k_F1_Af_Lf_Z0 umcc\nx_F0_An_Lb_Z0 mag\n")
    script = next(s for s in SCRIPTS if s.name == "sweep_array.sbatch")
    result = _dry_run(tmp_path, script, str(tags), "train.csv", "val.csv", "--epochs", "3", SLURM_ARRAY_TASK_ID="3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ugn", "train", "--resume", "auto", "--tag", "x_F0_An_Lb_Z0", "--arch", "mag",
                                     "--train", "train.csv", "--val", "val.csv",
                                     "--output", str(tmp_path / "runs" / "mag-x_F0_An_Lb_Z0"), "--workers", "8",
                                     "--epochs", "3"]
    # the same tag with another architecture is another run folder: a requeued task never continues another's run
    tags.write_text("t_F0_Af_Lb_Z0 umcc\nt_F0_Af_Lb_Z0 classifier\n")
    outs = {_dry_run(tmp_path, script, str(tags), "tr.csv", "va.csv", SLURM_ARRAY_TASK_ID=task).stdout.split()[13]
            for task in ("1", "2")}
    assert outs == {str(tmp_path / "runs" / "umcc-t_F0_Af_Lb_Z0"), str(tmp_path / "runs" / "classifier-t_F0_Af_Lb_Z0")}
    missing = _dry_run(tmp_path, script, str(tags), "train.csv", "val.csv", SLURM_ARRAY_TASK_ID="9")
    assert missing.returncode == 2 and "no tag on line 9" in missing.stderr


def test_one_node_script_runs_torchrun_with_one_process_per_gpu(tmp_path):
    script = next(s for s in SCRIPTS if s.name == "train_1node.sbatch")
    result = _dry_run(tmp_path, script, "t_F0_Af_Lb_Z0", "umcc", "tr.csv", "va.csv", SLURM_GPUS_ON_NODE="4")
    assert result.returncode == 0, result.stderr
    words = result.stdout.split()
    assert words[:4] == ["torchrun", "--standalone", "--nproc_per_node", "4"] and words[4].endswith("/ugn")
    assert words[5:8] == ["train", "--resume", "auto"] and words[words.index("--workers") + 1] == "2"  # 8 CPUs / 4 GPUs
    assert _dry_run(tmp_path, script, "only-a-tag").returncode == 2


def test_one_node_script_without_nvidia_smi_says_so_instead_of_dying(tmp_path):
    script = next(s for s in SCRIPTS if s.name == "train_1node.sbatch")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for tool in ("bash", "grep", "dirname"):  # a PATH without nvidia-smi: with pipefail it used to end the script (127)
        (fake_bin / tool).symlink_to(shutil.which(tool))
    result = _dry_run(tmp_path, script, "t_F0_Af_Lb_Z0", "umcc", "tr.csv", "va.csv", PATH=str(fake_bin))
    assert result.returncode == 0, result.stderr
    assert "no GPU visible" in result.stderr and result.stdout.split()[:4] == ["torchrun", "--standalone", "--nproc_per_node", "1"]


def test_multinode_rendezvous_port_comes_from_the_job_id(tmp_path):
    script = next(s for s in SCRIPTS if s.name == "train_multinode.sbatch")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "scontrol").write_text("#!/bin/sh\necho node01\n")
    (fake_bin / "scontrol").chmod(0o755)
    ports = set()
    for job in ("1234", "1235"):
        result = _dry_run(tmp_path, script, "t_F0_Af_Lb_Z0", "umcc", "tr.csv", "va.csv", SLURM_JOB_ID=job,
                          SLURM_JOB_NODELIST="node[01-02]", SLURM_NNODES="2", SLURM_GPUS_ON_NODE="4")
        assert result.returncode == 0, result.stderr
        ports.add(next(w for w in result.stdout.split() if w.startswith("node01:")))
    assert ports == {"node01:21234", "node01:21235"}


@pytest.mark.parametrize("script", [*SCRIPTS, *sorted((SCRIPTS[0].parents[1] / "experiments").glob("*.sh"))],
                         ids=lambda p: p.name)
def test_jobs_ask_for_a_warning_signal_and_requeue_and_say_to_make_logs(script):
    text = script.read_text()
    if "#SBATCH" not in text:
        return  # common.sh
    assert "#SBATCH --signal=B:USR1@120" in text and "#SBATCH --requeue" in text
    assert "#SBATCH --output=logs/" in text and "mkdir -p logs" in text


def test_requeueable_passes_the_signal_on_and_requeues_the_job(tmp_path):
    """A real USR1 to the batch shell: the command gets TERM, exits 75 (as ugn train does), the job is requeued."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'scontrol.txt'}\n")
    (fake_bin / "scontrol").chmod(0o755)
    child = tmp_path / "child.sh"
    child.write_text("#!/bin/bash\ntrap 'echo got TERM; exit 75' TERM\necho started\nwhile :; do sleep 0.1; done\n")
    child.chmod(0o755)
    requeue = SCRIPTS[0].parent / "requeue.sh"
    shell = subprocess.Popen(["bash", "-c", f"set -euo pipefail; source {requeue}; requeueable {child}; echo not reached"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}", "SLURM_JOB_ID": "77"})
    assert shell.stdout.readline().strip() == "started"
    shell.send_signal(signal.SIGUSR1)
    out, err = shell.communicate(timeout=30)
    assert shell.returncode == 0, err
    assert "got TERM" in out and "not reached" not in out
    assert (tmp_path / "scontrol.txt").read_text().split() == ["requeue", "77"]


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
    assert "torchrun --nnodes 2" in result.stdout and "--rdzv_endpoint node1:20007" in result.stdout
