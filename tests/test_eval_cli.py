"""`ugn evaluate` and `ugn runs` end to end: predictions tables, a real tiny checkpoint, reports, the registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unifiedgender.cli.app import main

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_ugn(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run `ugn ARGS` in this process; return (exit code, stdout + stderr)."""
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setattr(sys, "argv", ["ugn", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out + captured.err


def predictions_table(n_subjects: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_subjects):
        gender = "male" if s % 2 else "female"
        for i in range(1 + s % 4):
            prob = float(np.clip(rng.normal(0.65 if gender == "male" else 0.4, 0.2), 0, 1))
            rows.append(
                {
                    "path": f"/images/{s}_{i}.png",
                    "subject_id": f"S{s}",
                    "modality": ("hand", "face")[s % 2 if s < 40 else 0],
                    "age": None if s % 7 == 0 else 15 + s,
                    "race": None if s % 5 == 0 else ("a", "b")[s % 3 % 2],
                    "gender": gender,
                    "prob_male": prob,
                    "pred": "male" if prob >= 0.5 else "female",
                    "status": "ok",
                }
            )
    rows[3].update(prob_male=None, pred=None, status="unreadable image: truncated")
    return pd.DataFrame(rows)


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    predictions_table().to_csv(tmp_path / "test_preds.csv", index=False)
    predictions_table(seed=1).to_csv(tmp_path / "val_preds.csv", index=False)
    return tmp_path


def test_run_evaluate_returns_a_typed_result_and_describes_the_run(workdir):
    """The core of `ugn evaluate` as a library call: typed result, run description in report.json and in the
    run-log row, usage checked before anything is written."""
    from unifiedgender.errors import UserError
    from unifiedgender.evaluation.run import EvaluationResult, run_evaluate
    from unifiedgender.evaluation.runlog import RunInfo, read_registry

    messages: list[str] = []
    result = run_evaluate(predictions="test_preds.csv", output="rep", bootstrap=0, plots=False, registry="runs.csv",
                          tag="t1", train_dataset="val_preds.csv", threshold=0.4, on_message=messages.append)
    assert isinstance(result, EvaluationResult) and isinstance(result.run, RunInfo)
    assert result.output == Path("rep") and result.registry == Path("runs.csv") and not result.plots
    assert result.report["threshold"] == {"value": 0.4, "method": "fixed", "chosen_on": "given"}
    assert result.report["data"]["n_evaluated"] == len(result.table.frame) == len(predictions_table()) - 1
    assert result.run.predictions == "test_preds.csv" and result.run.checkpoint is None and result.run.report == "rep"
    assert json.loads((workdir / "rep" / "report.json").read_text())["run"] == result.run.as_dict()
    # --train-dataset names a readable manifest: the baseline predicts its majority class
    assert result.report["image_level"]["baseline"]["majority_class_from"] == "training data (val_preds.csv)"
    row = read_registry("runs.csv").iloc[0]
    assert (row["tag"], row["train_dataset"], row["category"]) == ("t1", "val_preds.csv", "evaluation")
    assert messages == []  # nothing predicted, nothing to say

    with pytest.raises(UserError, match="rep already exists"):
        run_evaluate(predictions="test_preds.csv", output="rep", registry=None)
    with pytest.raises(UserError, match="--threshold-from val_preds.csv: no 'prob_male' column") as error:
        pd.read_csv("val_preds.csv").drop(columns="prob_male").to_csv("val_preds.csv", index=False)
        run_evaluate(predictions="test_preds.csv", output="rep2", registry=None, threshold_from="val_preds.csv")
    assert "(or a manifest with CHECKPOINT)" in str(error.value) and not Path("rep2").exists()


def test_evaluate_predictions_cli_fast_path(workdir, monkeypatch, capsys):
    """`ugn evaluate --predictions` without plots and bootstrap (the full run with both is marked slow)."""
    code, out = run_ugn(monkeypatch, capsys, "evaluate", "--predictions", "test_preds.csv", "--output", "rep",
                        "--bootstrap", "0", "--no-plots", "--registry", "runs.csv", "--modality", "face")
    assert code == 0, out
    assert "report: rep/report.md, rep/report.json, rep/predictions.csv" in out and "rep/plots/" not in out
    assert "registry: appended one row to runs.csv" in out and "balanced_accuracy at 0.5" in out
    report = json.loads((workdir / "rep" / "report.json").read_text())
    assert set(report["data"]["modalities"]) == {"face"} and report["run"]["predictions"] == "test_preds.csv"


@pytest.mark.slow
def test_evaluate_predictions_writes_report_plots_and_registry_row(workdir, monkeypatch, capsys):
    code, out = run_ugn(monkeypatch, capsys, "evaluate", "--predictions", "test_preds.csv", "--out", "rep",
                        "--bootstrap", "200", "--seed", "3", "--tag", "resnet18.a1_in1k_F0_An_Lb_Z0")
    assert code == 0, out
    assert "balanced_accuracy" in out and "baseline" in out and "unreadable image: truncated 1" in out
    report = json.loads((workdir / "rep" / "report.json").read_text())
    assert report["data"]["n_excluded"] == 1 and report["bootstrap"]["seed"] == 3
    assert set(report["fairness"]) == {"modality", "age", "race", "gender"}
    assert "unknown" in report["fairness"]["race"]["groups"]
    low, high = report["image_level"]["ci"]["balanced_accuracy"]
    assert low < report["image_level"]["metrics"]["balanced_accuracy"] < high
    for plot in report["plots"].values():
        assert (workdir / "rep" / plot).read_bytes()[:8] == PNG_MAGIC
    assert {"roc_pr", "confusion_matrix", "reliability", "roc_pr_race", "group_metrics_age"} <= set(report["plots"])
    markdown = (workdir / "rep" / "report.md").read_text()
    assert "## Fairness" in markdown and "majority-class baseline" in markdown and "NOT applied" in markdown
    assert len(pd.read_csv(workdir / "rep" / "predictions.csv")) == len(predictions_table())

    registry = pd.read_csv(workdir / "metrics" / "final_metrics_with_full_configurations.csv")
    assert len(registry) == 1
    row = registry.iloc[0]
    assert row["tag"] == "resnet18.a1_in1k_F0_An_Lb_Z0" and row["modality"] == "face+hand"
    assert row["balanced_accuracy"] == pytest.approx(report["image_level"]["metrics"]["balanced_accuracy"])
    assert (row["balanced_accuracy_ci_low"], row["balanced_accuracy_ci_high"]) == pytest.approx((low, high))
    assert row["subject_roc_auc"] == pytest.approx(report["subject_level"]["metrics"]["roc_auc"])
    assert row["test_dataset"].endswith("/test_preds.csv")

    # the folder is never overwritten silently
    code, out = run_ugn(monkeypatch, capsys, "evaluate", "--predictions", "test_preds.csv", "--out", "rep")
    assert code == 2 and "rep already exists; pass --overwrite" in out
    code, out = run_ugn(monkeypatch, capsys, "evaluate", "--predictions", "test_preds.csv", "--out", "rep", "--overwrite",
                        "--threshold-from", "val_preds.csv", "--threshold-method", "eer", "--bootstrap", "50",
                        "--modality", "hand", "--no-plots")
    assert code == 0, out
    report = json.loads((workdir / "rep" / "report.json").read_text())
    assert report["threshold"]["method"] == "eer" and report["threshold"]["chosen_on"] == "validation predictions"
    assert report["data"]["modalities"] == {"hand": report["data"]["n_evaluated"]}
    assert not [p.name for p in workdir.iterdir() if p.name.startswith(".rep")]  # no leftovers of the swap
    assert report["plots"] == {} and not (workdir / "rep" / "plots").exists()

    code, out = run_ugn(monkeypatch, capsys, "runs", "-k", "5", "--modality", "face")
    assert code == 0, out
    assert "Best 1 of 2 runs by balanced_accuracy" in out and "resnet18.a1_in1k_F0_An_Lb_Z0" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate"], "give either CHECKPOINT with --data MANIFEST, or --predictions TABLE"),
        (["evaluate", "model.pt"], "CHECKPOINT model.pt needs --data MANIFEST.csv"),
        (["evaluate", "--predictions", "test_preds.csv", "--threshold", "0.4", "--threshold-from", "val_preds.csv"],
         "--threshold and --threshold-from exclude each other"),
        (["evaluate", "--predictions", "test_preds.csv", "--modality", "foot"], "--modality 'foot': use one of hand"),
        (["evaluate", "--predictions", "test_preds.csv", "--threshold-method", "f1"], "--threshold-method 'f1'"),
        (["evaluate", "--predictions", "missing.csv"], "predictions table not found: missing.csv"),
        (["evaluate", "--predictions", "test_preds.csv", "--age-buckets", "60,18"], "--age-buckets '60,18'"),
        (["evaluate", "--predictions", "test_preds.csv", "--threshold", "0"], "--threshold 0.0: must be in (0, 1]"),
        (["evaluate", "model.pt", "--data", "test_preds.csv"], "checkpoint not found: model.pt"),
        (["evaluate", "--predictions", "test_preds.csv", "--tta"], "--tta needs a CHECKPOINT"),
        (["runs", "--registry", "nothing.csv"], "run registry not found: nothing.csv"),
    ],
)
def test_user_errors_exit_2_with_one_line(workdir, monkeypatch, capsys, args, message):
    code, out = run_ugn(monkeypatch, capsys, *args)
    assert code == 2
    assert message in out
    assert "Traceback" not in out
    assert not (workdir / "metrics").exists()


def test_cli_module_imports_no_heavy_library():
    code = "import sys, unifiedgender.cli.evaluate; print(sorted(m for m in ('numpy', 'pandas', 'torch', 'sklearn') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_evaluate_a_real_checkpoint_on_a_manifest(tmp_path, monkeypatch, capsys):
    """Train nothing: a random tiny simple_cnn saved as a checkpoint, predicted and evaluated on tiny images."""
    from PIL import Image

    from unifiedgender.checkpoint import save_checkpoint
    from unifiedgender.data.manifest import write_manifest
    from unifiedgender.evaluation.thresholds import select_threshold
    from unifiedgender.models import create_model

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    rows = []
    for s in range(12):
        for i in range(2):
            path = tmp_path / "images" / f"s{s}_{i}.png"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8)).save(path)
            rows.append({"path": str(path), "subject_id": f"s{s}", "gender": ("female", "male")[s % 2],
                         "modality": "fingerprint", "age": 20 + s if s % 4 else None, "split": "test"})
    (tmp_path / "images" / "s0_1.png").write_bytes(b"not an image")
    write_manifest(pd.DataFrame(rows), tmp_path / "test.csv")
    (tmp_path / "data").mkdir()
    pd.DataFrame({"gender": ["female"] * 3 + ["male"]}).to_csv(tmp_path / "data" / "train.csv", index=False)
    model = create_model("simple_cnn", pretrained="none", image_size=32)
    save_checkpoint(tmp_path / "tiny.pt", model, tag="simple_cnn_F0_An_Lb_Z0", config={"train": "data/train.csv"})

    # --threshold-from a manifest: the checkpoint predicts it first, then Youden's J picks the threshold
    code, out = run_ugn(monkeypatch, capsys, "evaluate", "tiny.pt", "--data", "test.csv", "--out", "rep",
                        "--bootstrap", "100", "--device", "cpu", "--batch-size", "8", "--threshold-from", "test.csv")
    assert code == 0, out
    assert out.count("predicting 24 images") >= 2 and out.count("24/24 images in") == 2  # progress, also in logs
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["threshold"]["method"] == "youden" and report["threshold"]["chosen_on"] == "validation predictions"
    predictions = pd.read_csv(tmp_path / "rep" / "predictions.csv")
    ok = predictions["status"] == "ok"
    labels = (predictions.loc[ok, "gender"] == "male").astype(int)
    assert report["threshold"]["value"] == pytest.approx(
        select_threshold(labels.to_numpy(), predictions.loc[ok, "prob_male"].to_numpy(), "youden"))
    assert report["data"]["n_evaluated"] == 23 and report["data"]["n_subjects"] == 12
    assert report["data"]["n_excluded"] == 1  # the corrupt image is reported, not fatal
    assert predictions["prob_male"].between(0, 1).sum() == 23
    assert "unknown" in report["fairness"]["age"]["groups"]
    # the baseline predicts the training data's majority (female): 11 of the 23 evaluated images
    baseline = report["image_level"]["baseline"]
    assert baseline["majority_class"] == "female" and baseline["majority_class_from"] == "training data (data/train.csv)"
    assert baseline["accuracy"] == pytest.approx(11 / 23)
    row = pd.read_csv(tmp_path / "metrics" / "final_metrics_with_full_configurations.csv").iloc[0]
    assert (row["arch"], row["tag"], row["train_dataset"], row["split"]) == (
        "simple_cnn", "simple_cnn_F0_An_Lb_Z0", "data/train.csv", "test")
    assert row["checkpoint"] == "tiny.pt"
    assert json.loads(row["configuration"])["model_kwargs"] == {"image_size": 32}

    # --train-dataset renames the training data in the registry; the baseline still comes from the checkpoint's manifest
    code, out = run_ugn(monkeypatch, capsys, "evaluate", "tiny.pt", "--data", "test.csv", "--out", "rep3", "--bootstrap",
                        "0", "--no-plots", "--device", "cpu", "--train-dataset", "socofing-train")
    assert code == 0, out
    renamed = json.loads((tmp_path / "rep3" / "report.json").read_text())["image_level"]["baseline"]
    assert renamed["majority_class_from"] == "training data (data/train.csv)"
    assert pd.read_csv(tmp_path / "metrics" / "final_metrics_with_full_configurations.csv").iloc[1]["train_dataset"] == "socofing-train"

    # --tta: P(male) is the mean over each image and its mirror image, for the test and the --threshold-from manifest
    code, out = run_ugn(monkeypatch, capsys, "evaluate", "tiny.pt", "--data", "test.csv", "--out", "rep_tta", "--tta",
                        "--bootstrap", "0", "--no-plots", "--device", "cpu", "--threshold-from", "test.csv", "--no-registry")
    assert code == 0, out
    assert out.count("(mirror TTA)") == 2
    assert json.loads((tmp_path / "rep_tta" / "report.json").read_text())["run"]["tta"] is True
    mirrored = pd.read_csv(tmp_path / "rep_tta" / "predictions.csv")
    assert_mirror_average(tmp_path / "tiny.pt", mirrored[ok], predictions.loc[ok, "prob_male"])

    code, out = run_ugn(monkeypatch, capsys, "evaluate", "tiny.pt", "--data", "test.csv", "--out", "rep2", "--modality", "hand")
    assert code == 2 and "test.csv: no rows with modality hand; check --modality" in out


def assert_mirror_average(checkpoint: Path, mirrored: pd.DataFrame, plain: pd.Series) -> None:
    """TTA probabilities = mean of the model's probabilities on each image and on its mirror image."""
    import torch

    from unifiedgender.checkpoint import load_checkpoint
    from unifiedgender.data.images import load_image
    from unifiedgender.data.transforms import build_eval_transform

    model, info = load_checkpoint(checkpoint)
    transform = build_eval_transform(info["data_config"])
    images = torch.stack([transform(load_image(p)) for p in mirrored["path"]])
    with torch.no_grad():
        prob = lambda x: torch.sigmoid(model(x)["logit"]).numpy()  # noqa: E731
        expected = (prob(images) + prob(images.flip(-1))) / 2
    assert np.allclose(mirrored["prob_male"], expected, atol=1e-4)
    assert not np.allclose(mirrored["prob_male"], plain, atol=1e-6)  # the mirror changed something
