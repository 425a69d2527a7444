"""The Adience workflow end to end on fixture images: import -> fold split -> multitask training (also from a
CelebA checkpoint) -> evaluation with gender and age-group metrics; and the whole-model --weights rule."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from face_dataset_fixtures import make_adience, make_celeba
from test_train_support import TINY
from unifiedgender.checkpoint import load_whole_model_if_matching, save_checkpoint
from unifiedgender.cli.app import app
from unifiedgender.evaluation.age import age_report
from unifiedgender.models import create_model

runner = CliRunner()


def ugn(*args: str) -> str:
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=True)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def train(train_csv, val_csv, out, *extra) -> None:
    ugn("train", "--tag", f"{TINY}_F0_An_Lb_Z0", "--arch", "multitask", "--train", train_csv, "--val", val_csv,
        "--out", out, "--epochs", "1", "--batch-size", "4", "--image-size", "32", "--pretrained", "none",
        "--workers", "0", "--cache", "memory", *extra)


@pytest.mark.slow  # two one-epoch trainings and an evaluation: about 10 s on an idle laptop core
def test_celeba_to_adience_multitask_fold_run(tmp_path):
    ugn("data", "import", "celeba", make_celeba(tmp_path / "celeba", absent=0), "-o", tmp_path / "celeba.csv")
    ugn("data", "split", tmp_path / "celeba.csv", "--by-column", "split", "-o", tmp_path / "celeba_split")
    train(tmp_path / "celeba_split/train.csv", tmp_path / "celeba_split/val.csv", tmp_path / "celeba_run")

    ugn("data", "import", "adience", make_adience(tmp_path / "adience", size=32, absent=0), "-o", tmp_path / "adience.csv")
    ugn("data", "split", tmp_path / "adience.csv", "--by-column", "fold", "--test-fold", "0", "--ratios", "0.5,0.5",
        "-o", tmp_path / "fold_0")
    train(tmp_path / "fold_0/train.csv", tmp_path / "fold_0/val.csv", tmp_path / "adience_run",
          "--weights", tmp_path / "celeba_run/best.pt")
    log = (tmp_path / "adience_run/train.log").read_text()
    assert "the whole model (backbone and heads, same architecture)" in log

    out = ugn("evaluate", tmp_path / "adience_run/best.pt", "--data", tmp_path / "fold_0/test.csv", "--out",
              tmp_path / "report", "--bootstrap", "0", "--no-plots", "--no-registry", "--device", "cpu")
    report = json.loads((tmp_path / "report/report.json").read_text())
    predictions = pd.read_csv(tmp_path / "report/predictions.csv")
    assert predictions["pred_age_group"].notna().all() and len(predictions) == 4  # fold 0: two faces x two photos
    for metric in ("balanced_accuracy", "roc_auc"):
        assert report["image_level"]["metrics"][metric] is not None
    age = report["age"]
    assert age["n"] == 4 and 0 <= age["exact_accuracy"] <= age["one_off_accuracy"] <= 1
    assert age["baseline"]["group"] in ("25-32", "38-43")
    assert "age group (4 images with a known age): exact" in " ".join(out.split())
    assert "## Age group (multitask; Adience groups)" in (tmp_path / "report/report.md").read_text()


def test_whole_model_loads_only_when_the_heads_match(tmp_path):
    torch.manual_seed(0)
    source = create_model("multitask", TINY, pretrained="none")
    path = save_checkpoint(tmp_path / "multitask.pt", source)
    target = create_model("multitask", TINY, pretrained="none")
    assert load_whole_model_if_matching(target, path)
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))

    other_heads = create_model("multitask", TINY, pretrained="none", num_age_classes=3)
    before = {k: v.clone() for k, v in other_heads.state_dict().items()}
    classifier = save_checkpoint(tmp_path / "classifier.pt", create_model("classifier", TINY, pretrained="none"))
    from safetensors.torch import save_file

    tensors = tmp_path / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tensors))
    for model, weights in ((other_heads, path), (other_heads, classifier), (target, tensors)):
        assert not load_whole_model_if_matching(model, weights)
        assert all(torch.equal(before[k], v) for k, v in other_heads.state_dict().items())


def test_age_metrics_exact_one_off_and_baseline():
    frame = pd.DataFrame({"subject_id": ["a", "a", "b", "c", "d"], "age": [28.5, 28.5, 40.5, 1.0, np.nan],
                          "pred_age_group": ["25-32", "38-43", "25-32", "8-12", "0-2"]})
    report = age_report(frame)
    # groups: truth 4,4,5,0 (and one unknown); predictions 4,5,4,2 -> exact 1/4, one-off 3/4
    assert (report["n"], report["n_without_age"], report["n_subjects"]) == (4, 1, 3)
    assert report["exact_accuracy"] == pytest.approx(0.25) and report["one_off_accuracy"] == pytest.approx(0.75)
    assert report["baseline"] == {"group": "25-32", "exact_accuracy": 0.5, "one_off_accuracy": 0.75}
    assert report["confusion"][4][5] == 1 and sum(map(sum, report["confusion"])) == 4
    assert age_report(frame.drop(columns="pred_age_group")) is None
