"""Fingerprint preprocessing, ridge features, the feature table and per-person fusion on synthetic prints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from fingerprint_fixtures import fingerprint_manifest, synthetic_print, write_print
from unifiedgender.cli.app import app
from unifiedgender.data.cache import Geometry, cache_key, decode_image
from unifiedgender.data.transforms import build_eval_transform, validate_data_config
from unifiedgender.errors import UserError
from unifiedgender.fingerprints import ridges
from unifiedgender.fingerprints.features import NoPrintError, image_features, ridge_feature_table, write_feature_table
from unifiedgender.fingerprints.fusion import fuse_fingerprints, split_data
from unifiedgender.fingerprints.preprocess import FingerprintPreprocess, canonical_preprocess, parse_preprocess

DATA_CONFIG = {"input_size": [1, 48, 48], "mean": [0.5], "std": [0.5], "interpolation": "bilinear", "crop_pct": 1.0,
               "crop_mode": "squash"}


# ----------------------------------------------------------------- preprocessing
def test_preprocess_steps_are_parsed_into_their_fixed_order():
    assert parse_preprocess("gabor+clahe,crop") == ("crop", "clahe", "gabor")
    assert canonical_preprocess("CLAHE") == "clahe"
    assert parse_preprocess("none") == () and parse_preprocess("") == () and parse_preprocess(None) == ()
    with pytest.raises(UserError, match="preprocess step 'sharpen' unknown"):
        parse_preprocess("clahe+sharpen")


def test_crop_keeps_the_print_and_drops_the_white_background_and_frame():
    image = Image.fromarray(synthetic_print(), mode="L")
    cropped = FingerprintPreprocess("crop")(image)
    assert cropped.width < image.width - 10 and cropped.height < image.height - 5
    arr = np.asarray(cropped)
    assert arr.min() < 60 and (arr[-1] > 0).any()  # ridges kept; the black frame line is gone


def test_gabor_enhancement_keeps_dark_ridges_at_the_same_places_and_whitens_the_background():
    gray = synthetic_print(period=6.0, seed=3)
    out = ridges.gabor_enhance(gray)
    mask = ridges.foreground_mask(gray)
    assert out.dtype == np.uint8 and out.shape == gray.shape
    assert (out[~mask] == 255).all()
    ridge, valley = mask & (gray < 100), mask & (gray > 150)
    assert out[ridge].mean() < out[valley].mean() - 40  # same polarity: ridges stay dark


def test_preprocess_keeps_the_image_mode():
    rgb = Image.fromarray(synthetic_print(), mode="L").convert("RGB")
    out = FingerprintPreprocess("crop+clahe+gabor")(rgb)
    assert out.mode == "RGB" and out.size[0] < rgb.size[0]


def test_eval_transform_and_training_cache_apply_the_data_configs_preprocessing(tmp_path):
    path = write_print(tmp_path / "a.png", period=6.0)
    config = {**DATA_CONFIG, "preprocess": "crop+clahe"}
    plain, pre = build_eval_transform(DATA_CONFIG), build_eval_transform(config)
    image = Image.open(path)
    expected = build_eval_transform(DATA_CONFIG)(FingerprintPreprocess("crop+clahe")(image))
    assert np.allclose(pre(image).numpy(), expected.numpy())
    assert not np.allclose(plain(image).numpy(), pre(image).numpy())
    geometry = Geometry.from_data_config(config)
    assert geometry.preprocess == "crop+clahe"
    assert cache_key([str(path)], geometry) != cache_key([str(path)], Geometry.from_data_config(DATA_CONFIG))
    decoded = decode_image(str(path), geometry).astype(np.float32) / 255  # the cache holds what eval sees
    assert np.allclose((decoded - 0.5) / 0.5, pre(image).numpy(), atol=1e-5)


def test_a_bad_preprocess_in_a_data_config_is_refused_with_its_name():
    with pytest.raises(UserError, match="preprocess step 'blur' unknown"):
        validate_data_config({**DATA_CONFIG, "preprocess": "blur"})


# ----------------------------------------------------------------- ridge features
@pytest.mark.parametrize("period", [4.0, 6.0, 9.0])
def test_ridge_period_is_measured(period):
    features = image_features(synthetic_print(period=period, angle=0.7))
    assert features["rf_period"] == pytest.approx(period, rel=0.12)
    assert features["rf_freq_median"] == pytest.approx(1 / period, rel=0.12)


def test_thicker_ridges_raise_the_ridge_valley_ratio():
    thin = image_features(synthetic_print(period=8.0, ridge_share=0.3))
    thick = image_features(synthetic_print(period=8.0, ridge_share=0.7))
    assert thick["rf_ridge_fraction"] > thin["rf_ridge_fraction"] + 0.2
    assert thick["rf_ridge_valley_ratio"] > 2 * thin["rf_ridge_valley_ratio"]


def test_orientation_histogram_follows_the_ridge_direction():
    vertical = image_features(synthetic_print(period=6.0, angle=0.0))  # phase varies along x: vertical ridges
    horizontal = image_features(synthetic_print(period=6.0, angle=np.pi / 2))
    # bins of ridge angle over [0, pi): vertical ridges sit in the middle bins, horizontal ones at the ends
    middle = lambda f: f["rf_orientation_3"] + f["rf_orientation_4"]  # noqa: E731
    assert middle(vertical) > 0.5 > middle(horizontal)


def test_a_blank_image_has_no_print():
    with pytest.raises(NoPrintError):
        image_features(np.full((100, 90), 255, dtype=np.uint8))


def test_feature_table_keeps_going_past_bad_images_and_refuses_to_overwrite(tmp_path):
    good = write_print(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    Image.fromarray(np.full((100, 90), 255, dtype=np.uint8)).save(tmp_path / "blank.png")
    manifest = pd.DataFrame({"path": [str(good), str(tmp_path / "broken.png"), str(tmp_path / "blank.png")],
                             "subject_id": ["1", "2", "3"], "gender": ["male", "female", "male"],
                             "modality": "fingerprint", "hand": "left", "finger": "index"})
    table = ridge_feature_table(manifest, workers=2)
    assert list(table.frame["status"][:1]) == ["ok"]
    assert set(table.failures) == {str(tmp_path / "broken.png"), str(tmp_path / "blank.png")}
    assert table.frame.loc[1:, "rf_period"].isna().all() and table.frame.loc[0, "rf_period"] > 0
    out = write_feature_table(table, tmp_path / "f.csv")
    with pytest.raises(UserError, match="already exists"):
        write_feature_table(table, out)


# ----------------------------------------------------------------- fusion
@pytest.fixture(scope="module")
def fingerprint_splits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prints")
    parts = {name: fingerprint_manifest(folder / name, people, seed=i, split=name)
             for i, (name, people) in enumerate((("train", 24), ("val", 20), ("test", 12)))}
    features = ridge_feature_table(pd.concat(parts.values(), ignore_index=True), workers=2).frame
    return parts, features


def _scores(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """An image model that is right on thumbs and guesses elsewhere."""
    rng = np.random.default_rng(seed)
    male = (frame["gender"] == "male").to_numpy()
    prob = np.where(frame["finger"] == "thumb", np.where(male, 0.8, 0.2), rng.uniform(0.3, 0.7, len(frame)))
    return pd.DataFrame({"path": frame["path"], "prob_male": prob})


@pytest.mark.slow
def test_ridge_and_stacked_models_find_the_signal_and_never_learn_from_test(fingerprint_splits):
    parts, features = fingerprint_splits
    scores = {name: _scores(parts[name], i) for i, name in enumerate(("val", "test"))}
    data = [split_data(parts["train"], features, None, "train"),
            split_data(parts["val"], features, scores["val"], "val"),
            split_data(parts["test"], features, scores["test"], "test")]
    result = fuse_fingerprints(*data)
    assert set(result.predictions) == {"ridge_image", "ridge_person", "cnn_mean", "cnn_stack", "combined_person",
                                       "combined_image"}
    assert len(result.positions) == 10
    from sklearn.metrics import roc_auc_score

    test = parts["test"]
    y = (test["gender"] == "male").astype(int)
    for name in ("ridge_person", "combined_person", "cnn_stack"):
        val_table, test_table = result.predictions[name]
        assert len(test_table) == len(test) and test_table.groupby("subject_id")["prob_male"].nunique().max() == 1
        assert roc_auc_score(y, test_table["prob_male"]) > 0.9, name
    assert result.selection["cnn_stack"]["trained_on"] == "validation"
    # flipping every test label changes no prediction: nothing is fitted on test
    flipped = parts["test"].assign(gender=np.where(parts["test"]["gender"] == "male", "female", "male"))
    again = fuse_fingerprints(data[0], data[1], split_data(flipped, features, scores["test"], "test"))
    for name, (_, test_table) in result.predictions.items():
        assert np.allclose(test_table["prob_male"], again.predictions[name][1]["prob_male"]), name


@pytest.mark.slow
def test_fusion_needs_hand_and_finger_and_every_image_in_the_feature_table(fingerprint_splits):
    parts, features = fingerprint_splits
    with pytest.raises(UserError, match="no 'hand' column"):
        split_data(parts["train"].drop(columns="hand"), features, None, "train")
    with pytest.raises(UserError, match="is not in the feature table"):
        split_data(parts["train"], features.iloc[5:], None, "train")


@pytest.mark.slow
def test_data_features_and_fuse_commands_write_tables_that_ugn_evaluate_reads(fingerprint_splits, tmp_path):
    parts, _ = fingerprint_splits
    paths = {}
    for name, frame in parts.items():
        paths[name] = tmp_path / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    everything = tmp_path / "all.csv"
    pd.concat(parts.values()).to_csv(everything, index=False)
    runner = CliRunner()
    result = runner.invoke(app, ["data", "features", str(everything), "-o", str(tmp_path / "features.csv"), "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "560 of 560 images" in result.output
    result = runner.invoke(app, ["fuse", "--features", str(tmp_path / "features.csv"), "--train", str(paths["train"]),
                                 "--val", str(paths["val"]), "--test", str(paths["test"]), "-o", str(tmp_path / "fused")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fused" / "selection.json").is_file()
    report = tmp_path / "report"
    result = runner.invoke(app, ["evaluate", "--predictions", str(tmp_path / "fused" / "ridge_person" / "test_predictions.csv"),
                                 "--threshold-from", str(tmp_path / "fused" / "ridge_person" / "val_predictions.csv"),
                                 "--out", str(report), "--no-registry", "--no-plots", "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    text = (report / "report.md").read_text()
    assert "### By hand" in text and "### By finger" in text
    again = runner.invoke(app, ["fuse", "--features", str(tmp_path / "features.csv"), "--train", str(paths["train"]),
                                "--val", str(paths["val"]), "--test", str(paths["test"]), "-o", str(tmp_path / "fused")])
    assert isinstance(again.exception, UserError) and "already holds results" in str(again.exception)


# ----------------------------------------------------------------- training records the preprocessing
@pytest.mark.slow
def test_training_with_preprocess_records_it_and_prediction_applies_it(tmp_path):
    import torch

    from unifiedgender.checkpoint import load_checkpoint
    from unifiedgender.inference.predictor import Predictor

    paths = {}
    for name, people in (("train", 4), ("val", 2)):
        paths[name] = tmp_path / f"{name}.csv"
        fingerprint_manifest(tmp_path / name, people, split=name).to_csv(paths[name], index=False)
    out = tmp_path / "run"
    args = ["train", "--tag", "simple_cnn_F0_An_Lb_Z0", "--arch", "simple_cnn", "--train", str(paths["train"]),
            "--val", str(paths["val"]), "--out", str(out), "--epochs", "1", "--batch-size", "8", "--image-size", "32",
            "--pretrained", "none", "--workers", "0", "--cache", "memory"]
    bad = CliRunner().invoke(app, [*args, "--preprocess", "clahe+blur"])
    assert isinstance(bad.exception, UserError) and "preprocess step 'blur' unknown" in str(bad.exception)
    result = CliRunner().invoke(app, [*args, "--preprocess", "clahe+crop"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    _, info = load_checkpoint(out / "best.pt")
    assert info["data_config"]["preprocess"] == "crop+clahe"
    assert "preprocess: crop+clahe" in (out / "config.yaml").read_text()
    predictor = Predictor.from_checkpoint(out / "best.pt", device="cpu")
    image_path = pd.read_csv(paths["val"])["path"][0]
    expected = build_eval_transform({**info["data_config"], "preprocess": ""})(
        FingerprintPreprocess("crop+clahe")(Image.open(image_path)))
    assert torch.allclose(predictor.transform(Image.open(image_path)), expected)


def test_reading_a_feature_table_names_the_problem(tmp_path):
    from unifiedgender.fingerprints.features import read_feature_table

    with pytest.raises(UserError, match="feature table not found"):
        read_feature_table(tmp_path / "none.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(UserError, match="not a readable CSV"):
        read_feature_table(tmp_path / "empty.csv")
    pd.DataFrame({"path": ["a.png"], "subject_id": ["1"], "status": ["ok"]}).to_csv(tmp_path / "plain.csv", index=False)
    with pytest.raises(UserError, match="no 'rf_' feature columns"):
        read_feature_table(tmp_path / "plain.csv")


@pytest.mark.slow
def test_a_person_without_image_scores_gets_no_label_from_the_score_mean(fingerprint_splits):
    from unifiedgender.fingerprints.fusion import STATUS_NO_SCORE

    parts, features = fingerprint_splits
    test = parts["test"]
    missing = test["subject_id"].iloc[0]
    result = fuse_fingerprints(split_data(parts["train"], features, None, "train"),
                               split_data(parts["val"], features, _scores(parts["val"], 0), "val"),
                               split_data(test, features, _scores(test[test["subject_id"] != missing], 1), "test"))
    table = result.predictions["cnn_mean"][1]
    absent, present = table[table["subject_id"] == missing], table[table["subject_id"] != missing]
    assert len(absent) and absent["prob_male"].isna().all()
    assert (absent["pred"] == "").all() and (absent["status"] == STATUS_NO_SCORE).all()  # not silently "female"
    assert (present["status"] == "ok").all() and present["pred"].isin(["male", "female"]).all()
