"""scripts/experiments: every script parses, is a Slurm job with a PROFILE switch, refuses bad settings;
summarize.py folds reports into docs."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from unifiedgender.cli.app import app

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "scripts" / "experiments"
SCRIPTS = sorted(p for p in EXPERIMENTS.glob("*.sh") if p.name != "common.sh")


def run_script(script: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "OUT": str(tmp_path / "out"), "UGN": sys.executable, **env}
    return subprocess.run(["bash", str(script)], capture_output=True, text=True, env=full_env, cwd=tmp_path, timeout=60)


def test_every_experiment_is_present() -> None:
    names = {p.stem for p in SCRIPTS}
    assert {"fingerprints", "hands", "faces", "unified", "seed_setups"} <= names


@pytest.mark.parametrize("script", [*SCRIPTS, EXPERIMENTS / "common.sh"], ids=lambda p: p.name)
def test_script_parses(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def sbatch_options(script: Path) -> dict[str, str]:
    """The #SBATCH options of a job script, as sbatch reads them (the comment block before the first command)."""
    options = {}
    for line in script.read_text().splitlines()[1:]:
        if line.startswith("#SBATCH "):
            name, _, value = line.removeprefix("#SBATCH ").strip().partition("=")
            options[name] = value
        elif line and not line.startswith("#"):
            break
    return options


# typer 0.29 parses with its own copy of click: its UsageError is the base of typer.BadParameter
UsageError = typer.BadParameter.__base__


def parse_ugn_command(line: str) -> typer.Context:
    """Parse one printed `ugn ...` line with the real CLI, down to the subcommand, without running it: raises
    UsageError on an unknown command, an unknown option, a missing argument or a value of the wrong type."""
    command = typer.main.get_command(app)
    context = command.make_context("ugn", shlex.split(line)[1:])
    while hasattr(command, "resolve_command"):  # a group: the subcommand's name is held apart from its arguments
        name, command, rest = command.resolve_command(context, [*context._protected_args, *context.args])
        context = command.make_context(name, rest, parent=context)
    return context


def dry_run_commands(script: Path, tmp_path: Path, profile: str) -> list[str]:
    extra = {"SETUP": "resnet18"} if script.name == "seed_setups.sh" else {}
    result = run_script(script, tmp_path, PROFILE=profile, DRY_RUN="1", UGN="true", **extra)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line.startswith("ugn ")]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_is_a_slurm_job(script: Path) -> None:
    assert script.read_text().startswith("#!/bin/bash\n")
    options = sbatch_options(script)
    assert {"--job-name", "--time", "--signal", "--requeue", "--output"} <= set(options), options


@pytest.mark.parametrize("profile", ["full", "cpu", "tiny"])
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_command_of_every_profile_is_one_ugn_accepts(script: Path, profile: str, tmp_path: Path) -> None:
    commands = dry_run_commands(script, tmp_path, profile)
    assert any(line.startswith("ugn train ") for line in commands)
    assert any(line.startswith("ugn evaluate ") for line in commands)
    for line in commands:
        parse_ugn_command(line)  # raises UsageError (naming the option) when the CLI would refuse it
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]  # a dry run writes nothing


def test_the_command_check_refuses_what_ugn_refuses() -> None:
    parse_ugn_command("ugn evaluate run/best.pt --data val.csv --tta")
    for wrong in ("ugn evaluate run/best.pt --no-such-flag", "ugn train --epochs many", "ugn data frobnicate x"):
        with pytest.raises(UsageError):
            parse_ugn_command(wrong)


@pytest.mark.parametrize("script", [p for p in SCRIPTS if p.name not in {"seed_setups.sh"}], ids=lambda p: p.name)
def test_profiles_give_different_budgets(script: Path, tmp_path: Path) -> None:
    trains = {profile: [line for line in dry_run_commands(script, tmp_path, profile)
                        if line.startswith("ugn train ")] for profile in ("full", "cpu", "tiny")}
    assert trains["full"] != trains["cpu"] and trains["tiny"] != trains["cpu"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_unknown_profile_is_refused(script: Path, tmp_path: Path) -> None:
    result = run_script(script, tmp_path, PROFILE="huge", SETUP="resnet18")
    assert result.returncode == 2
    assert "PROFILE must be cpu, full or tiny (got 'huge')" in result.stderr


def test_missing_ugn_is_named(tmp_path: Path) -> None:
    result = run_script(EXPERIMENTS / "hands.sh", tmp_path, UGN="no-such-ugn-command")
    assert result.returncode == 2
    assert "'no-such-ugn-command' not found" in result.stderr


def test_a_rerun_keeps_earlier_results_and_writes_beside_them(tmp_path: Path) -> None:
    done = tmp_path / "out" / "hands"
    done.mkdir(parents=True)
    (done / "run_info.txt").write_text("earlier results\n")
    result = run_script(EXPERIMENTS / "hands.sh", tmp_path, UGN="true", RUNS="lite0")
    assert result.returncode == 0, result.stderr
    assert f"{done} holds earlier results (kept); this run writes {done}-2" in result.stderr
    assert (done / "run_info.txt").read_text() == "earlier results\n"
    assert (tmp_path / "out" / "hands-2" / "run_info.txt").is_file()
    commands = (tmp_path / "out" / "hands-2" / "commands.sh").read_text()
    assert "--output " + str(tmp_path / "out" / "hands-2" / "lite0") + " --resume auto" in commands


def test_a_requeued_job_continues_its_folder_and_skips_finished_steps(tmp_path: Path) -> None:
    slurm = {"UGN": "true", "RUNS": "lite0", "SLURM_JOB_ID": "4242", "SLURM_CPUS_PER_TASK": "8"}
    first = run_script(EXPERIMENTS / "hands.sh", tmp_path, **slurm)
    assert first.returncode == 0, first.stderr
    exp = tmp_path / "out" / "hands"
    assert "slurm_job: 4242" in (exp / "run_info.txt").read_text()
    assert "--workers 8" in (exp / "commands.sh").read_text()  # the booked CPUs, not 1
    steps = (exp / "steps_done.txt").read_text().splitlines()
    (exp / "steps_done.txt").write_text("\n".join(steps[:2]) + "\n")  # as if stopped during the third step
    again = run_script(EXPERIMENTS / "hands.sh", tmp_path, SLURM_RESTART_COUNT="1", **slurm)
    assert again.returncode == 0, again.stderr
    assert f"continuing {exp}" in again.stderr and again.stderr.count("done before the requeue") == 2
    assert not (tmp_path / "out" / "hands-2").exists()
    assert (exp / "steps_done.txt").read_text().splitlines() == steps


def test_seed_setups_needs_a_known_setup(tmp_path: Path) -> None:
    result = run_script(EXPERIMENTS / "seed_setups.sh", tmp_path, SETUP="vgg")
    assert result.returncode == 2
    assert "SETUP must be resnet18, efficientnet_v2_s or resnet50_head (got 'vgg')" in result.stderr


def test_summarize_drops_plots_and_shifts_headings(tmp_path: Path) -> None:
    (tmp_path / "report.md").write_text("# Evaluation report\n\n- Rows evaluated: 3\n\n## Metrics\n\n| a |\n|---|\n\n"
                                        "![ROC](plots/roc.png)\n\n### By skin\n\n| b |\n")
    result = subprocess.run([sys.executable, str(EXPERIMENTS / "summarize.py"), str(tmp_path), "--level", "1"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "- Rows evaluated: 3\n\n### Metrics\n\n| a |\n|---|\n\n#### By skin\n\n| b |\n"


def test_summarize_names_a_folder_without_report(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(EXPERIMENTS / "summarize.py"), str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "report.md not found: is it a `ugn evaluate` report folder?" in result.stderr


def test_summarize_rows_from_report_json(tmp_path: Path) -> None:
    folder = tmp_path / "hands" / "lite0" / "report_hand"
    folder.mkdir(parents=True)
    (folder / "report.md").write_text("# Evaluation report\n")
    level = {"n": 10, "metrics": {"balanced_accuracy": 0.75, "roc_auc": None},
             "ci": {"balanced_accuracy": [0.6, 0.9]}, "baseline": {"accuracy": 0.7, "balanced_accuracy": 0.5}}
    (folder / "report.json").write_text(json.dumps({"image_level": level, "subject_level": {**level, "n": 4},
                                                    "threshold": {"value": 0.4, "method": "youden"}}))
    result = subprocess.run([sys.executable, str(EXPERIMENTS / "summarize.py"), str(folder), "--rows"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == ("| hands/lite0/report_hand | 10 (4) | 0.400 (youden) | 0.750 [0.600, 0.900] "
                                              "| n/a | 0.750 [0.600, 0.900] | n/a | 0.700 / 0.500 |")


@pytest.mark.parametrize(("profile", "expected"), [
    ("full", "--epochs 20 --image-size 224 --lr 3e-4"),
    ("cpu", "--epochs 3 --image-size 96 --lr 3e-4"),
])
def test_profile_sets_the_training_budget(profile: str, expected: str, tmp_path: Path) -> None:
    result = run_script(EXPERIMENTS / "fingerprints.sh", tmp_path, PROFILE=profile, DRY_RUN="1", UGN="true",
                        RUNS="lite0")
    assert result.returncode == 0, result.stderr
    train = [line for line in result.stdout.splitlines() if line.startswith("ugn train")]
    assert len(train) == 1 and train[0].endswith(expected)
    assert "--tag tf_efficientnet_lite0.in1k_F0_Af_Lb_Z0 --arch classifier" in train[0]
    evaluate = [line for line in result.stdout.splitlines() if line.startswith("ugn evaluate")]
    assert len(evaluate) == 1 and "--threshold-from" in evaluate[0] and "lite0/val_predictions.csv" in evaluate[0]
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


def test_unified_full_profile_uses_the_published_backbone_and_evaluates_per_modality(tmp_path: Path) -> None:
    result = run_script(EXPERIMENTS / "unified.sh", tmp_path, PROFILE="full", DRY_RUN="1", UGN="true")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("--tag tf_efficientnetv2_s.in1k_F0_Af_Lf_Z0 --arch umcc" in line for line in lines)
    assert any("--tag tf_efficientnetv2_s.in1k_F0_Af_Lf_Z0_gating=soft --arch mag" in line for line in lines)
    per_modality = [line for line in lines if line.startswith("ugn evaluate --predictions")]
    assert len(per_modality) == 6 and sum("--modality face" in line for line in per_modality) == 3
    recipe = [line for line in lines if line.startswith("ugn train --recipe unified")]
    assert len(recipe) == 1 and recipe[0].endswith("--epochs 30")  # SIZE 0: the recipe keeps its input size
    assert any("recipe/val_report_tta/predictions.csv" in line for line in per_modality)


@pytest.mark.parametrize(("profile", "expected"), [
    ("full", "--log-every-steps 50 --epochs 20 --image-size 224"),
    ("cpu", "--log-every-steps 50"),
])
def test_recipe_run_adapts_the_recipe_to_the_profile_and_evaluates_with_tta(profile: str, expected: str,
                                                                           tmp_path: Path) -> None:
    result = run_script(EXPERIMENTS / "fingerprints.sh", tmp_path, PROFILE=profile, DRY_RUN="1", UGN="true",
                        RUNS="recipe")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    train = [line for line in lines if line.startswith("ugn train")]
    assert len(train) == 1 and train[0].startswith("ugn train --recipe fingerprint") and train[0].endswith(expected)
    evaluate = [line for line in lines if line.startswith("ugn evaluate")]
    assert [("--tta" in line, "--threshold-from" in line) for line in evaluate] == [(False, False), (True, False), (True, True)]
    assert "--data " + str(tmp_path / "out" / "fingerprints" / "data" / "split" / "test.csv") in evaluate[2]


def test_fusion_run_fuses_the_score_runs_predictions_and_evaluates_every_model(tmp_path: Path) -> None:
    result = run_script(EXPERIMENTS / "fingerprints.sh", tmp_path, DRY_RUN="1", UGN="true", RUNS="mobilenet_v2 fusion")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    exp = tmp_path / "out" / "fingerprints"
    fuse = [line for line in lines if line.startswith("ugn fuse")]
    assert len(fuse) == 1 and f"--val-scores {exp}/mobilenet_v2/val_predictions.csv" in fuse[0]
    assert f"--test-scores {exp}/mobilenet_v2/report/predictions.csv" in fuse[0]
    evaluated = [line.split("--output ")[1].split()[0] for line in lines if line.startswith("ugn evaluate --predictions")]
    assert [Path(p).parent.name for p in evaluated] == ["ridge_image", "ridge_person", "cnn_mean", "cnn_stack",
                                                         "combined_person", "combined_image"]
    ridge_only = run_script(EXPERIMENTS / "fingerprints.sh", tmp_path, DRY_RUN="1", UGN="true", RUNS="ridge")
    assert "--val-scores" not in ridge_only.stdout and ridge_only.stdout.count("ugn evaluate --predictions") == 2


def test_summarize_seeds_gives_mean_and_sd_per_run_name(tmp_path: Path) -> None:
    folders = []
    for seed, (ba, auc) in enumerate(((0.6, 0.7), (0.8, 0.9))):
        folder = tmp_path / f"seed{seed}" / "fingerprints" / "mobilenet_v2" / "report"
        folder.mkdir(parents=True)
        (folder / "report.md").write_text("# Evaluation report\n")
        level = {"metrics": {"balanced_accuracy": ba, "roc_auc": auc}}
        (folder / "report.json").write_text(json.dumps({"image_level": level, "subject_level": level}))
        folders.append(str(folder))
    result = subprocess.run([sys.executable, str(EXPERIMENTS / "summarize.py"), *folders, "--seeds"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == ("| fingerprints/mobilenet_v2 | 2 | 0.700 ± 0.141 | 0.800 ± 0.141 "
                                              "| 0.700 ± 0.141 | 0.800 ± 0.141 |")


def test_faces_cross_trains_on_lfw_only_and_evaluates_utkface_three_ways(tmp_path: Path) -> None:
    result = run_script(EXPERIMENTS / "faces_cross.sh", tmp_path, DRY_RUN="1", UGN="true", RUNS="plain framed_lite2 dlib_probe")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    data = tmp_path / "out" / "faces_cross" / "data"
    assert f"ugn data subset {data}/lfw.csv --per-subject 1 -o {data}/subset.csv --seed 0" in lines
    train = [line for line in lines if line.startswith("ugn train")]
    assert [line.split("--log-every-steps 50 ")[1] for line in train] == [
        "--no-face-crop", "--face-crop --lr 3e-4 --image-size 128 --tag tf_efficientnet_lite2.in1k_F0_Af_Lw_Z0",
        "--face-crop --image-size 150 --lr 0.01 --tag dlib-face_resnet.v1_F0_An_Lw_Z1"]
    assert all(f"--train {data}/split/train.csv --val {data}/split/val.csv" in line for line in train)
    utk = [line for line in lines if "utkface.csv" in line or "report_utk" in line]
    assert not any(line.startswith("ugn train") for line in utk)  # never trained or tuned on utkface_dev
    framed = tmp_path / "out" / "faces_cross" / "framed_lite2"
    assert [line.split(" --seed")[0] for line in lines if f"{framed}/report_utk" in line] == [
        f"ugn evaluate {framed}/best.pt --data {data}/utkface.csv --tta --threshold-from {framed}/val_report_tta/predictions.csv",
        f"ugn evaluate --predictions {framed}/report_utk/predictions.csv --threshold 0.5",
        f"ugn evaluate --predictions {framed}/report_utk/predictions.csv --threshold-from "
        f"{framed}/val_report_tta/predictions.csv --threshold-method eer",
    ]
    refused = run_script(EXPERIMENTS / "faces_cross.sh", tmp_path, DRY_RUN="1", UGN="true", RUNS="framed bogus")
    assert refused.returncode == 2 and "unknown run 'bogus'" in refused.stderr and not refused.stdout


def test_runs_from_a_slurm_spool_copy(tmp_path: Path) -> None:
    spool = tmp_path / "slurmd" / "job42" / "slurm_script"
    spool.parent.mkdir(parents=True)
    spool.write_text((EXPERIMENTS / "hands.sh").read_text())
    result = run_script(spool, tmp_path, DRY_RUN="1", UGN="true", SLURM_SUBMIT_DIR=str(REPO))
    assert result.returncode == 0, result.stderr
    assert any(line.startswith("ugn train --tag tf_efficientnet_lite0.in1k") for line in result.stdout.splitlines())


def test_summarize_validation_rows_pick_the_epoch_the_tool_keeps(tmp_path: Path) -> None:
    run = tmp_path / "faces" / "recipe"
    (run / "val_report_tta").mkdir(parents=True)
    (run / "config.yaml").write_text("tag: lite0_F0_Af_Lw_Z0\narch: classifier\nimage_size: 128\nselect_metric: val_loss\n")
    (run / "history.csv").write_text("epoch,val_loss,val_balanced_acc,val_auc\n1,0.5,0.70,0.80\n2,0.4,0.60,0.85\n"
                                     "3,0.4,0.90,0.95\n4,0.6,0.95,0.97\n")
    (run / "val_report_tta" / "report.json").write_text(json.dumps({"image_level": {"metrics": {"roc_auc": 0.8612}}}))
    result = subprocess.run([sys.executable, str(EXPERIMENTS / "summarize.py"), str(run), "--validation"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # lowest validation loss first reached in epoch 2 (the tie in epoch 3 does not replace it)
    assert result.stdout.splitlines()[2] == (
        "| faces/recipe | `lite0_F0_Af_Lw_Z0` | 128 px | val_loss | 2 of 4 | 0.600 | 0.850 | 0.861 |")


def test_summarize_paired_differences_use_each_runs_threshold(tmp_path: Path) -> None:
    """B ranks every male above every female; A ranks one pair wrongly and thresholds at its own 0.5."""
    rows = [("s1", "male", 0.9, 0.8), ("s2", "male", 0.4, 0.7), ("s3", "female", 0.6, 0.2), ("s4", "female", 0.1, 0.3),
            ("s5", "male", 0.8, 0.9), ("s6", "female", 0.3, 0.1)]
    folders = []
    for name, column, threshold in (("a", 2, 0.5), ("b", 3, 0.5)):
        report = tmp_path / "exp" / name / "report"
        report.mkdir(parents=True)
        (report / "report.json").write_text(json.dumps({"threshold": {"value": threshold}}))
        lines = ["path,subject_id,gender,prob_male,status"] + [f"/img/{r[0]}.png,{r[0]},{r[1]},{r[column]},ok" for r in rows]
        (report / "predictions.csv").write_text("\n".join(lines) + "\n")
        folders.append(str(report))
    result = subprocess.run([sys.executable, str(EXPERIMENTS / "summarize.py"), *folders, "--paired"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    row = result.stdout.splitlines()[2]
    # A: males 2 of 3 right, females 2 of 3 right -> BA 2/3; 1 of 9 male-female pairs misordered -> AUC 8/9. B: 1, 1.
    assert row.startswith("| exp/b minus exp/a | 6 (6) | +0.333 [") and "| +0.111 [" in row


@pytest.mark.parametrize("celeba", ["", "/data/celeba"])
def test_adience_runs_the_five_folds_and_transfers_from_celeba(celeba: str, tmp_path: Path) -> None:
    result = run_script(EXPERIMENTS / "adience.sh", tmp_path, PROFILE="full", DRY_RUN="1", UGN="true", CELEBA=celeba)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("ugn data split") and "--by-column fold --folds --ratios 0.8,0.2" in line for line in lines)
    folds = [line for line in lines if line.startswith("ugn train") and "/fold_" in line]
    assert len(folds) == 5 and all("--arch multitask" in line and "--epochs 20 --image-size 224" in line for line in folds)
    assert all(f"folds/fold_{k}/train.csv" in line for k, line in enumerate(folds))
    tests = [line for line in lines if line.startswith("ugn evaluate") and "/fold_" in line]
    assert all(f"folds/fold_{k}/test.csv" in t and f"fold_{k}/val_predictions.csv" in t for k, t in enumerate(tests))
    assert lines[-1].startswith("python3 ") and lines[-1].count("/report") == 5 and "--folds" in lines[-1]
    transfer = [line for line in lines if "--by-column split" in line]
    if celeba:
        assert len(transfer) == 1 and all(line.endswith("--weights " + str(tmp_path / "out/adience/celeba/best.pt"))
                                          for line in folds)
    else:
        assert not transfer and not any("--weights" in line for line in folds)
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


def test_summarize_folds_gives_mean_and_sample_sd(tmp_path: Path) -> None:
    folders = []
    for k, (ba, exact) in enumerate([(0.8, 0.5), (0.9, 0.6), (0.7, None)]):
        folder = tmp_path / f"fold_{k}" / "report"
        folder.mkdir(parents=True)
        level = {"n": 10, "metrics": {"balanced_accuracy": ba, "roc_auc": 0.9}, "baseline": {"balanced_accuracy": 0.5}}
        age = {} if exact is None else {"age": {"exact_accuracy": exact, "one_off_accuracy": 0.9,
                                                "baseline": {"exact_accuracy": 0.3}}}
        (folder / "report.json").write_text(json.dumps({"image_level": level, "subject_level": {**level, "n": 4},
                                                        "threshold": {"value": 0.5}, **age}))
        folders.append(str(folder))
    result = subprocess.run([sys.executable, str(EXPERIMENTS / "summarize.py"), *folders, "--folds"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[2] == "| fold_0 | 10 (4) | 0.500 | 0.800 | 0.900 | 0.500 | 0.900 | 0.500 / 0.300 |"
    assert lines[4].endswith("| 0.700 | 0.900 | n/a | n/a | 0.500 / n/a |")
    # BA 0.8, 0.9, 0.7: mean 0.8, sample sd 0.1; age exact over the two folds that have it: 0.55 ± 0.0707
    assert lines[-1] == "| mean ± sd (3 folds) | | | 0.800 ± 0.100 | 0.900 ± 0.000 | 0.550 ± 0.071 | 0.900 ± 0.000 | |"


@pytest.mark.parametrize(("run", "change"), [
    ("mobilenet_v2_pre", lambda base: base + " --preprocess crop+clahe+gabor"),
    ("mobilenet_v2_ridge", lambda base: base.replace("--arch classifier", "--arch ridge_classifier")),
])
def test_fingerprint_cnn_variants_are_the_baseline_with_one_change(tmp_path: Path, run, change) -> None:
    result = run_script(EXPERIMENTS / "fingerprints.sh", tmp_path, DRY_RUN="1", UGN="true", RUNS=f"mobilenet_v2 {run}")
    assert result.returncode == 0, result.stderr
    base, variant = [line for line in result.stdout.splitlines() if line.startswith("ugn train")]
    parse_ugn_command(variant)
    assert variant.replace(f"/{run} ", "/mobilenet_v2 ") == change(base)
