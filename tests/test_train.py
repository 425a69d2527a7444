"""`ugn train` end to end on CPU: every architecture, tiny backbone, tiny images, one epoch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from test_train_support import TINY, make_manifests, make_split
from unifiedgender.cli.app import app
from unifiedgender.errors import UserError

HISTORY_COLUMNS = {"epoch", "train_loss", "val_loss", "train_acc", "val_acc", "val_balanced_acc", "val_auc", "lr",
                   "train_seconds", "images_per_s", "val_ece", "val_ece_calibrated", "val_temperature"}
PREDICTION_COLUMNS = ["path", "subject_id", "gender", "modality", "age", "prob_male", "pred", "status"]  # manifest columns first


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    return make_manifests(tmp_path_factory.mktemp("data"))


def invoke(*args: str):
    return CliRunner().invoke(app, ["train", *args], catch_exceptions=True)


def train_args(manifests, out, tag, arch, *extra: str) -> list[str]:
    train, val = manifests
    return ["--tag", tag, "--arch", arch, "--train", str(train), "--val", str(val), "--out", str(out),
            "--epochs", "1", "--batch-size", "4", "--image-size", "32", "--pretrained", "none", "--workers", "0",
            "--cache", "memory", *extra]


@pytest.mark.parametrize("arch, tag, extra", [
    ("umcc", f"{TINY}_F1_Af_Lf_Z0", []),
    ("mag", f"{TINY}_F0_An_Lb_Z0_gating=hard", []),
    ("classifier", f"{TINY}_F0_Ar_Lw_Z1", ["--epochs", "2", "--unfreeze-after", "1"]),
    ("simple_cnn", "simple_cnn_F0_An_Lb_Z0", []),
    ("resnet50_head", f"{TINY}_F0_Af_Lb_Z3", []),
    ("multitask", f"{TINY}_F0_Am_Lb_Z0", []),
])
def test_every_architecture_trains_end_to_end(manifests, tmp_path, arch, tag, extra):
    out = tmp_path / "run"
    result = invoke(*train_args(manifests, out, tag, arch), *extra)
    assert result.exit_code == 0, result.output + repr(result.exception)
    for name in ("config.yaml", "history.csv", "training_curves.png", "best.pt", "last.pt", "val_predictions.csv", "train.log"):
        assert (out / name).is_file(), name
    history = pd.read_csv(out / "history.csv")
    assert len(history) == (2 if extra else 1) and HISTORY_COLUMNS <= set(history.columns)
    if arch == "mag":
        assert "train_loss_modality" in history.columns
    if arch == "multitask":
        assert "train_loss_age" in history.columns
    if arch == "classifier":  # Z1 freezes the backbone; --unfreeze-after 1 trains everything from epoch 2
        log = (out / "train.log").read_text()
        assert "epoch 2: all layers unfrozen (--unfreeze-after 1)" in log
    predictions = pd.read_csv(out / "val_predictions.csv")
    assert list(predictions.columns) == PREDICTION_COLUMNS and len(predictions) == 7
    assert predictions["prob_male"].between(0, 1).all() and set(predictions["status"]) == {"ok"}
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["arch"] == arch and saved["tag"] == tag and saved["optimizer"] == "adamw" and saved["lr"] == 1e-4
    assert "calibration of best.pt: temperature" in (out / "train.log").read_text()
    if arch == "umcc":
        assert_best_checkpoint_reproduces_val_predictions(out, tag)


def assert_best_checkpoint_reproduces_val_predictions(out, tag):
    """best.pt through load_checkpoint + the eval transform gives the probabilities training saved."""
    from unifiedgender.checkpoint import load_checkpoint
    from unifiedgender.data.images import load_image
    from unifiedgender.data.manifest import MODALITIES
    from unifiedgender.data.transforms import build_eval_transform

    model, info = load_checkpoint(out / "best.pt")
    assert info["tag"] == tag and list(info["data_config"]["input_size"]) == [3, 32, 32]
    predictions = pd.read_csv(out / "val_predictions.csv")
    transform = build_eval_transform(info["data_config"])
    images = torch.stack([transform(load_image(p)) for p in predictions["path"]])
    modality = torch.tensor([MODALITIES.index(m) for m in predictions["modality"]])
    with torch.no_grad():
        logits = model(images, modality)["logit"].numpy()
    temperature = info["decision"]["temperature"]  # val_predictions.csv holds the calibrated probabilities
    assert temperature != 1.0
    assert np.allclose(1 / (1 + np.exp(-logits / temperature)), predictions["prob_male"], atol=1e-4)


def test_existing_run_folder_is_refused_unless_overwrite(manifests, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "history.csv").write_text("old")
    result = invoke(*train_args(manifests, out, "simple_cnn_F0_An_Lb_Z0", "simple_cnn"))
    assert isinstance(result.exception, UserError) and "already exists (it holds history.csv); pass --overwrite" in str(result.exception)
    assert (out / "history.csv").read_text() == "old"
    result = invoke(*train_args(manifests, out, "simple_cnn_F0_An_Lb_Z0", "simple_cnn"), "--overwrite")
    assert result.exit_code == 0 and (out / "history.csv").read_text() != "old"


def test_config_file_then_flags_and_early_stopping(manifests, tmp_path):
    train, val = manifests
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"tag": "simple_cnn_F0_An_Lb_Z0", "arch": "simple_cnn", "train": str(train),
                                      "val": str(val), "epochs": 4, "batch-size": 8, "lr": 1e-12, "image_size": 24,
                                      "early_stop_patience": 1, "scheduler": "plateau", "cache": "memory",
                                      "workers": 0}))
    out = tmp_path / "run"
    result = invoke("--config", str(config), "--batch-size", "4", "--out", str(out))
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["batch_size"] == 4 and saved["epochs"] == 4 and saved["scheduler"] == "plateau"
    assert len(pd.read_csv(out / "history.csv")) == 2  # lr ~ 0: no improvement after epoch 1, patience 1
    assert "early stopping" in (out / "train.log").read_text()


def test_corrupt_image_is_skipped_and_reported(tmp_path):
    train, val = make_manifests(tmp_path / "data")
    df = pd.read_csv(train)
    (tmp_path / "data" / df.at[0, "path"]).write_bytes(b"not an image")
    out = tmp_path / "run"
    result = invoke(*train_args((train, val), out, "simple_cnn_F0_An_Lb_Z0", "simple_cnn"))
    assert result.exit_code == 0, result.output
    skipped = pd.read_csv(out / "skipped_images.csv")
    assert len(skipped) == 1 and skipped.at[0, "path"].endswith("train_0.png")
    assert "not an image" in skipped.at[0, "status"]


@pytest.mark.parametrize("args, message", [
    (["--arch", "cnn"], "unknown architecture 'cnn'"),
    (["--optimizer", "lion"], "unknown optimizer 'lion'"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--tag", "resnet18_F9_Af_Lb_Z0"], "unknown F code 'F9'"),
])
def test_bad_settings_are_refused_with_one_line(manifests, tmp_path, args, message):
    base = train_args(manifests, tmp_path / "run", "simple_cnn_F0_An_Lb_Z0", "simple_cnn")
    for flag, value in zip(args[::2], args[1::2]):
        if flag in base:
            base[base.index(flag) + 1] = value
        else:
            base += [flag, value]
    result = invoke(*base)
    assert isinstance(result.exception, UserError) and message in str(result.exception)


def test_hand_face_only_model_refuses_other_modalities_before_training(tmp_path):
    train, val = make_manifests(tmp_path / "data", modalities=("fingerprint",))
    result = invoke(*train_args((train, val), tmp_path / "run", f"{TINY}_F0_An_Lb_Z0", "mag"))
    assert isinstance(result.exception, UserError)
    assert "modality 'fingerprint' but mag (F0) takes hand or face images only" in str(result.exception)


def test_missing_settings_named(tmp_path):
    with pytest.raises(UserError, match="missing --tag"):
        from unifiedgender.training.config import resolve_config

        resolve_config(None, {"arch": "umcc"})
    config = tmp_path / "bad.yaml"
    config.write_text("epochz: 3\n")
    result = invoke("--config", str(config))
    assert isinstance(result.exception, UserError) and "unknown setting 'epochz'" in str(result.exception)


def test_trains_on_the_bundled_sample(tmp_path):
    """Real images (the 11K Hands + LFW sample), a subject-level split, one epoch of UMCC with the flag."""
    from unifiedgender.data.manifest import read_manifest
    from unifiedgender.data.split import split_manifest, write_splits
    from unifiedgender.sample import sample_manifest_path

    parts = split_manifest(read_manifest(sample_manifest_path()), (0.75, 0.25), seed=0)
    write_splits(parts, tmp_path / "split")
    out = tmp_path / "run"
    result = invoke(*train_args((tmp_path / "split" / "train.csv", tmp_path / "split" / "val.csv"), out,
                                f"{TINY}_F1_Af_Lb_Z0", "umcc", "--batch-size", "16"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    predictions = pd.read_csv(out / "val_predictions.csv")
    assert len(predictions) == len(parts["val"]) and set(predictions["modality"]) == {"hand", "face"}
    assert set(predictions["subject_id"].astype(str)).isdisjoint(set(parts["train"]["subject_id"].astype(str)))


def test_single_gender_validation_set_is_refused_before_training(tmp_path):
    train, _ = make_manifests(tmp_path / "data")
    val = make_split(tmp_path / "val", "val", 3, start=2000)
    frame = pd.read_csv(val)
    frame["gender"] = "male"
    frame.to_csv(val, index=False)
    result = invoke(*train_args((train, val), tmp_path / "run", f"{TINY}_F0_An_Lb_Z0", "classifier"))
    assert isinstance(result.exception, UserError)
    assert str(result.exception).startswith(f"{val}: every image is 'male'")
    assert not (tmp_path / "run" / "best.pt").exists()


@pytest.mark.parametrize("metric, pick", [("val_loss", "idxmin"), ("val_auc", "idxmax"), ("val_balanced_acc", "idxmax")])
def test_select_metric_decides_which_epoch_becomes_best(manifests, tmp_path, metric, pick):
    from unifiedgender.checkpoint import read_checkpoint

    out = tmp_path / "run"
    result = invoke(*train_args(manifests, out, "simple_cnn_F0_An_Lb_Z0", "simple_cnn"), "--epochs", "3",
                    "--lr", "3e-3", "--select-metric", metric)
    assert result.exit_code == 0, result.output + repr(result.exception)
    history = pd.read_csv(out / "history.csv").set_index("epoch")
    expected = int(getattr(history[metric], pick)())  # first best epoch: later ties do not replace it
    assert read_checkpoint(out / "best.pt")["metrics"]["epoch"] == expected
    assert f"done: best {metric} {history.loc[expected, metric]:.4f}" in (out / "train.log").read_text()


def test_recipe_supplies_settings_that_config_and_flags_override(manifests, tmp_path):
    from unifiedgender.recipes import recipe_names

    assert recipe_names() == ["face", "fingerprint", "hand", "unified"]
    train, val = manifests
    config = tmp_path / "mine.yaml"
    config.write_text(yaml.safe_dump({"weight_decay": 0.05}))
    out = tmp_path / "run"
    result = invoke("--recipe", "hand", "--config", str(config), "--tag", f"{TINY}_F0_An_Lw_Z0", "--train", str(train),
                    "--val", str(val), "--out", str(out), "--epochs", "1", "--batch-size", "4", "--image-size", "32",
                    "--pretrained", "none", "--workers", "0", "--cache", "memory")
    assert result.exit_code == 0, result.output + repr(result.exception)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert (saved["arch"], saved["lr"], saved["select_metric"], saved["early_stop_patience"]) == ("classifier", 3e-4, "val_auc", 0)
    assert (saved["weight_decay"], saved["epochs"], saved["image_size"], saved["tag"]) == (0.05, 1, 32, f"{TINY}_F0_An_Lw_Z0")


@pytest.mark.parametrize("args, message", [
    (["--recipe", "feet"], "unknown recipe 'feet'; use one of face, fingerprint, hand, unified"),
    (["--select-metric", "val_f1"], "unknown select_metric 'val_f1'; use one of val_balanced_acc, val_auc"),
])
def test_bad_recipe_or_select_metric_is_refused(manifests, tmp_path, args, message):
    result = invoke(*train_args(manifests, tmp_path / "run", "simple_cnn_F0_An_Lb_Z0", "simple_cnn"), *args)
    assert isinstance(result.exception, UserError) and message in str(result.exception)
    assert not (tmp_path / "run").exists()


def test_a_matching_recipe_is_suggested_without_changing_anything(manifests, tmp_path):
    from unifiedgender.recipes import suggested_recipe

    assert [suggested_recipe(m) for m in ({"hand", "face"}, {"fingerprint"}, {"face"}, {"fluting_tactile"}, {"hand", "fingerprint"})] == [
        "unified", "fingerprint", "face", None, None]
    out = tmp_path / "run"
    result = invoke(*train_args(manifests, out, "simple_cnn_F0_An_Lb_Z0", "simple_cnn"))
    assert result.exit_code == 0, result.output
    assert "tip: `--recipe unified` holds the settings validation chose" in result.output  # hands + faces
    assert yaml.safe_load((out / "config.yaml").read_text())["select_metric"] == "val_balanced_acc"


@pytest.mark.parametrize("bad", ["manifest", "weights", "tag"])
def test_a_failed_start_leaves_no_run_folder(manifests, tmp_path, bad):
    out = tmp_path / "runs" / "run"
    args = train_args(manifests, out, "simple_cnn_F0_An_Lb_Z0", "simple_cnn")
    if bad == "manifest":
        args[args.index("--train") + 1] = str(tmp_path / "missing.csv")
    elif bad == "weights":
        args += ["--weights", str(tmp_path / "missing.pth")]
        args[args.index("--tag") + 1], args[args.index("--arch") + 1] = f"{TINY}_F0_An_Lb_Z0", "classifier"
    else:
        args[args.index("--tag") + 1] = "simple_cnn_F0_An_Lb_Z0_seedx"
    result = invoke(*args)
    assert isinstance(result.exception, UserError), result.output
    assert not out.exists()  # nothing that would block the corrected rerun
    fixed = invoke(*train_args(manifests, out, "simple_cnn_F0_An_Lb_Z0", "simple_cnn"))
    assert fixed.exit_code == 0, fixed.output


def test_a_start_that_never_trained_is_replaced_and_a_run_is_not(manifests, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "train.log").write_text("2026-01-01 00:00:00 run ... (killed while decoding)\n")
    (out / "config.yaml").write_text("tag: old\n")
    result = invoke(*train_args(manifests, out, "simple_cnn_F0_An_Lb_Z0", "simple_cnn"))
    assert result.exit_code == 0, result.output
    log = (out / "train.log").read_text()
    assert "killed while decoding" not in log and "an earlier start there never trained" in log
    again = invoke(*train_args(manifests, out, "simple_cnn_F0_An_Lb_Z0", "simple_cnn"))
    assert isinstance(again.exception, UserError)
    assert "already holds a run (last.pt); continue it with --resume auto" in str(again.exception)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    refused = invoke(*train_args(manifests, foreign, "simple_cnn_F0_An_Lb_Z0", "simple_cnn"))
    assert isinstance(refused.exception, UserError) and "(it holds notes.txt)" in str(refused.exception)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_each_rank_draws_its_own_random_numbers_and_rank_0_keeps_the_seed():
    """Per-rank seeding: dropout masks and RandAugment ops differ across DDP ranks; a single run is unchanged."""
    import random

    from unifiedgender.training.state import seed_everything

    def draws(seed, rank):
        seed_everything(seed, rank)
        return torch.rand(4), np.random.rand(), random.random()

    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    plain = torch.rand(4), np.random.rand(), random.random()
    rank0, rank1 = draws(7, 0), draws(7, 1)
    assert torch.equal(rank0[0], plain[0]) and rank0[1:] == plain[1:]
    assert not torch.equal(rank0[0], rank1[0]) and rank0[1] != rank1[1] and rank0[2] != rank1[2]
    mask0, mask1 = (seed_everything(7, r) or torch.nn.functional.dropout(torch.ones(64), 0.5) for r in (0, 1))
    assert not torch.equal(mask0, mask1)


def test_ddp_is_told_about_parameters_a_step_can_leave_without_gradient():
    from unifiedgender.models import create_model
    from unifiedgender.training.trainer import may_leave_parameters_unused

    def model(arch, **kwargs):
        return create_model(arch, TINY, pretrained="none", **kwargs)

    assert not may_leave_parameters_unused(model("classifier"), age_weight=1.0)
    assert not may_leave_parameters_unused(model("mag", gating="soft"), age_weight=1.0)
    assert may_leave_parameters_unused(model("mag", gating="hard"), age_weight=1.0)
    assert may_leave_parameters_unused(model("multitask"), age_weight=0.0)
    assert not may_leave_parameters_unused(model("multitask"), age_weight=1.0)
