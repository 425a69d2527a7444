"""The `ugn` command itself: help, version, completion, error format, light start-up, and the demo pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from unifiedgender import __version__

REPO = Path(__file__).resolve().parents[1]
GROUPS = ("demo", "data", "download", "train", "evaluate", "runs", "predict", "export", "convert", "serve", "crop", "bench")


def ugn(*args: str, env: dict[str, str] | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "unifiedgender", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120", **(env or {})})


def test_help_lists_every_command_group_with_one_line_help():
    result = ugn("--help")
    assert result.returncode == 0
    for name in GROUPS:
        assert any(line.split("│")[1].strip().startswith(name + " ") for line in result.stdout.splitlines()
                   if line.count("│") >= 2), name


def test_help_imports_no_heavy_library():
    code = ("import sys; sys.argv = ['ugn', '--help']\n"
            "from unifiedgender.cli.app import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'numpy', 'pandas', 'PIL', 'sklearn', 'timm', 'fastapi', 'cv2', 'gdown')"
            " if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr


def test_version():
    result = ugn("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"ugn {__version__}"


def test_shell_completion_script_and_completions():
    # Typer detects the calling shell; its test switch makes the shell an argument, so make's /bin/sh is no matter.
    script = ugn("--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert script.returncode == 0 and "complete" in script.stdout
    prog = "ugn"
    completions = subprocess.run(
        [sys.executable, "-c", "from unifiedgender.cli.app import main; main()"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO), f"_{prog.upper()}_COMPLETE": "complete_bash",
             "COMP_WORDS": "ugn da", "COMP_CWORD": "1", "_TYPER_COMPLETE_TESTING": "1"},
    )
    assert "data" in completions.stdout.split(), completions.stdout + completions.stderr


def test_user_error_is_one_line_with_exit_code_2(tmp_path):
    result = ugn("data", "info", str(tmp_path / "missing.csv"))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "missing.csv" in lines[0]


def test_unknown_command_is_a_usage_error():
    result = ugn("trian")
    assert result.returncode == 2 and "trian" in result.stderr


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "demo"
    fast = ("--epochs", "1", "--image-size", "64", "--pretrained", "none")
    result = ugn("demo", "--out", str(out), *fast, env={"OMP_NUM_THREADS": "1"}, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    for key in ("report", "predictions", "checkpoint", "contact_sheet"):
        assert Path(summary[key]).exists(), key
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["threshold"]["chosen_on"] == "validation predictions"
    assert {"modality", "skin", "age"} <= set(report["fairness"])
    train = pd.read_csv(out / "splits" / "train.csv", dtype={"subject_id": str})
    test = pd.read_csv(out / "splits" / "test.csv", dtype={"subject_id": str})
    assert set(train["subject_id"]).isdisjoint(test["subject_id"])
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == summary["predicted_faces"] == (test["modality"] == "face").sum()
    again = ugn("demo", "--out", str(out), *fast, timeout=120)
    assert again.returncode == 2 and "--overwrite" in again.stderr
