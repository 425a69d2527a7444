"""`ugn bench all` (the GPU check): the dry run on the CPU runs every phase and writes the JSON/Markdown pair."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from unifiedgender.cli.app import app
from unifiedgender.errors import UserError
from unifiedgender.gpu_check import DRY_SETTINGS, GPU_SETTINGS, Phase, _phase, plan, targets

PHASES = ["environment", "train_bench:resnet18", "train_bench:tf_efficientnetv2_s", "syncs", "predict", "training"]


@pytest.mark.slow
def test_dry_run_runs_every_phase_on_the_cpu_and_writes_json_and_markdown(tmp_path):
    out = tmp_path / "check" / "gpu_check.json"
    result = CliRunner().invoke(app, ["bench", "all", "--dry-run", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "ugn bench train --backbone tf_efficientnetv2_s --batch-size 256 --image-size 224" in result.output  # the plan
    assert "--precision bf16 --compile --device cuda" in result.output
    report = json.loads(out.read_text())
    assert report["dry_run"] and report["format"] == "ugn-gpu-check/1"
    assert [p["name"] for p in report["phases"]] == PHASES
    assert all(p["status"] == "ok" for p in report["phases"]), [p["error"] for p in report["phases"]]
    phases = {p["name"]: p["result"] for p in report["phases"]}
    bench = phases["train_bench:resnet18"]
    assert {r["name"] for r in bench["results"]} == {"synthetic", "project", "pil"} and bench["image_size"] == 32
    assert phases["predict"]["of_ceiling"]["torch"] > 0 and phases["predict"]["max_abs_diff"] < 1e-4
    runs = phases["training"]["runs"]
    assert set(runs) == {"bf16", "fp32"}
    test = runs["bf16"]["test"]
    assert test["n"] > 0 and 0 <= test["balanced_accuracy"] <= 1 and "majority_baseline" in test
    agreement = phases["training"]["bf16_vs_fp32"]
    assert 0 < agreement["max_abs_prob_diff"] < 0.05  # bf16 autocast really ran, and stays close to fp32
    assert all(row["met"] == "n/a (dry run)" for row in report["targets"])
    text = out.with_suffix(".md").read_text()
    assert "DRY RUN" in text and "| tf_efficientnetv2_s |" in text
    again = CliRunner().invoke(app, ["bench", "all", "--dry-run", "-o", str(out)])
    assert isinstance(again.exception, UserError) and "already exists" in str(again.exception)


def test_plan_names_the_issue_settings():
    lines = "\n".join(plan(GPU_SETTINGS, None))
    for backbone in ("resnet18", "tf_efficientnetv2_s"):
        assert f"--backbone {backbone} --batch-size 256 --image-size 224 --steps 20 --workers 4" in lines
    assert "--compile" in lines and "--no-compile" in lines and "--precision fp32" in lines
    assert "bench predict" in lines and "--device cuda" in lines
    assert DRY_SETTINGS.device == "cpu" and DRY_SETTINGS.image_size < GPU_SETTINGS.image_size


def test_targets_compare_each_ratio_with_its_goal():
    phases = [Phase("train_bench:resnet18", result={"ratio_project_vs_synthetic": 0.95, "ratio_project_vs_pil": 2.0}),
              Phase("predict", result={"of_ceiling": {"torch": 0.8}}),
              Phase("training", result={"runs": {"bf16": {"test": {"balanced_accuracy": 0.6}}},
                                        "bf16_vs_fp32": {"max_abs_prob_diff": 0.01}})]
    met = {row["target"]: row["met"] for row in targets(phases, dry_run=False)}
    assert met == {"resnet18: (b) project >= 0.9 x (a) synthetic": "yes", "resnet18: (b) project >= 3 x (c) PIL": "no",
                   "predict >= 0.7 x synthetic ceiling": "yes", "training bf16: test balanced accuracy (sane)": "no",
                   "bf16 vs fp32: max |prob difference|": "yes"}
    failed = [Phase("predict", status="failed"), Phase("training")]
    assert {row["met"] for row in targets(failed, dry_run=False)} == {"no data"}


def test_a_failing_phase_is_recorded_and_does_not_stop_the_check():
    def broken():
        raise RuntimeError("CUDA error: out of memory")

    phase = _phase("predict", DRY_SETTINGS, lambda _: None, broken)
    assert phase.status == "failed" and phase.error == "RuntimeError: CUDA error: out of memory" and phase.result == {}


def test_script_runs_ugn_bench_all_with_its_arguments_and_the_offline_weights(tmp_path):
    import os
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ugn").write_text('#!/bin/sh\necho "weights=$UGN_WEIGHTS_DIR args=$*"\n')
    (fake / "ugn").chmod(0o755)
    (tmp_path / "data" / "lfw_gender").mkdir(parents=True)
    (tmp_path / "weights").mkdir()
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "UGN_DATA": str(tmp_path / "data"), "UGN_WEIGHTS_DIR": ""}
    done = subprocess.run(["bash", str(script), "--dry-run", "-o", "r.json"], env=env, capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"weights={tmp_path / 'data'}/../weights args=bench all --dry-run -o r.json"
    missing = subprocess.run(["bash", str(script)], env={**env, "UGN": "no-such-ugn"}, capture_output=True, text=True)
    assert missing.returncode == 2 and "'no-such-ugn' not found" in missing.stderr


def test_a_failed_training_run_is_a_target_without_data_not_a_silent_gap():
    phases = [Phase("predict"), Phase("training", result={"runs": {
        "bf16": {"status": "ok", "test": {"balanced_accuracy": 0.9}},
        "bf16_compile": {"status": "failed", "error": "BackendCompilerFailed: no C compiler", "test": None},
        "fp32": {"status": "ok", "test": None}}})]
    rows = {row["target"]: row["met"] for row in targets(phases, dry_run=False)}
    assert rows["training bf16: test balanced accuracy (sane)"] == "yes"
    assert rows["training bf16_compile: test balanced accuracy (sane)"] == "no data"
    assert not any("fp32: test" in target for target in rows)
