"""The decision a model ships with: temperature scaling, stored thresholds and policies, the shift check,
and how predict, evaluate and export use them (old checkpoints without them behave as before)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from predict_fixtures import make_checkpoint, one_torch_thread, run_ugn, write_images  # noqa: F401 (autouse fixture)
from unifiedgender.decision import DEFAULT_THRESHOLD_POLICY, THRESHOLD_POLICIES, Decision, Threshold, calibrated_probs
from unifiedgender.errors import UserError
from unifiedgender.evaluation.calibration import fit_decision, fit_temperature, nll, score_summary
from unifiedgender.evaluation.metrics import expected_calibration_error
from unifiedgender.evaluation.shift import MIN_IMAGES, check_shift
from unifiedgender.evaluation.thresholds import select_threshold

N_IMAGES = 40
TEMPERATURE = 2.0


# ------------------------------------------------------------------------------------------------ calibration
@pytest.mark.parametrize("true_temperature", [0.5, 2.5])
def test_fit_temperature_recovers_the_known_temperature(true_temperature):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, 40_000)
    labels = (rng.random(logits.size) < calibrated_probs(logits, true_temperature)).astype(int)
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.05)
    for other in (fitted * 0.9, fitted * 1.1):  # it is the minimum of the log loss
        assert nll(logits, labels, fitted) < nll(logits, labels, other)


def test_fit_temperature_of_one_class_or_bad_logits_is_one():
    assert fit_temperature(np.array([1.0, 2.0]), np.array([1, 1])) == 1.0
    assert fit_temperature(np.array([np.nan, 2.0]), np.array([0, 1])) == 1.0


def test_fit_decision_lowers_ece_and_stores_every_policy():
    rng = np.random.default_rng(1)
    true = rng.normal(0.3, 2, 3000)
    labels = (rng.random(true.size) < calibrated_probs(true)).astype(int)
    decision = fit_decision(true * 3, labels, chosen_on="validation v.csv", policy="youden")  # over-confident logits
    assert decision.temperature == pytest.approx(3, rel=0.1)
    assert decision.ece["calibrated"] < decision.ece["uncalibrated"] / 2
    assert decision.ece["uncalibrated"] == pytest.approx(expected_calibration_error(labels, calibrated_probs(true * 3)))
    probs = calibrated_probs(true * 3, decision.temperature)
    assert set(decision.thresholds) == set(THRESHOLD_POLICIES) and decision.thresholds["0.5"] == 0.5
    assert decision.thresholds["youden"] == select_threshold(labels, probs, "youden")
    assert decision.thresholds["eer"] == select_threshold(labels, probs, "eer")
    raw = calibrated_probs(true * 3)  # today's behaviour stays reachable: the same decisions as on raw P(male)
    for policy in ("youden", "eer"):
        assert np.array_equal(probs >= decision.thresholds[policy], raw >= select_threshold(labels, raw, policy))
    assert np.array_equal(probs >= 0.5, raw >= 0.5)
    assert decision.threshold() == Threshold(decision.thresholds["youden"], "youden", "validation v.csv")
    assert decision.scores["n"] == 3000 and len(decision.scores["quantiles"]) == 100
    with pytest.raises(UserError, match="unknown threshold policy 'best'"):
        fit_decision(true, labels, "v", "best")


def test_decision_round_trip_defaults_and_overrides():
    stored = Decision(1.7, "eer", {"0.5": 0.5, "youden": 0.42, "eer": 0.47}, "validation v.csv (epoch 2, 50 images)",
                      {"uncalibrated": 0.1, "calibrated": 0.03}, {"n": 3, "quantiles": [0.1, 0.5, 0.9]})
    assert Decision.from_dict(json.loads(json.dumps(stored.as_dict()))) == stored
    assert stored.threshold().value == 0.47 and "eer on validation v.csv" in stored.threshold().describe()
    assert stored.threshold(policy="youden").value == 0.42
    assert stored.threshold(0.3) == Threshold(0.3, "fixed", "given")
    assert "given with --threshold" in stored.threshold(0.3).describe()
    exported = stored.with_threshold(stored.threshold(0.3))
    assert (exported.policy, exported.threshold().value, exported.temperature) == ("given", 0.3, 1.7)
    assert exported.threshold().describe() == "0.3000 (given with --threshold at export)"
    assert exported.threshold(policy="youden").value == 0.42  # the others stay stored
    assert stored.with_threshold(stored.threshold(policy="youden")).policy == "youden"
    old = Decision.from_dict(None)  # a checkpoint saved before decisions were stored: as before
    assert (old.stored, old.temperature, old.threshold().value) == (False, 1.0, 0.5)
    assert "stores no threshold" in old.threshold().describe()
    with pytest.raises(UserError, match="stores no thresholds"):
        old.threshold(policy="youden")
    with pytest.raises(UserError, match="unknown decision format"):
        Decision.from_dict({"format": "x"})
    with pytest.raises(UserError, match=r"must be in \(0, 1\]"):
        stored.threshold(1.5)


# ------------------------------------------------------------------------------------------------ shift check
def test_shift_check_warns_on_shifted_scores_and_is_silent_on_matching_ones():
    rng = np.random.default_rng(2)
    validation = score_summary(rng.beta(2, 2, 500))
    matching = check_shift(validation, rng.beta(2, 2, 300), 0.5)
    assert matching is not None and not matching.shifted
    shifted = check_shift(validation, rng.beta(2, 5, 300), 0.5)  # mostly low P(male): few predicted male
    assert shifted.shifted and shifted.rate_shifted and shifted.scores_shifted
    assert shifted.positive_rate < 0.25 < 0.4 < shifted.val_positive_rate
    assert "may not transfer" in shifted.message() and "\n" not in shifted.message()
    assert check_shift(validation, rng.beta(2, 5, MIN_IMAGES - 1), 0.5) is None  # too few images to say
    assert check_shift(None, rng.beta(2, 5, 300), 0.5) is None  # the model stores no scores


# ------------------------------------------------------------------------------------------------ checkpoints in use
@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("images"), N_IMAGES)


@pytest.fixture(scope="module")
def models(tmp_path_factory, images):
    """raw.pt (no decision, as saved before), cal.pt (temperature 2, youden policy, scores of these images),
    shifted.pt (the same, but its validation scores lie far above these images')."""
    from unifiedgender.checkpoint import load_checkpoint, save_checkpoint
    from unifiedgender.inference import Predictor

    folder = tmp_path_factory.mktemp("models")
    raw = make_checkpoint(folder / "raw.pt")
    raw_probs = np.array([r["prob_male"] for r in Predictor.from_checkpoint(raw).predict_paths(images)])
    probs = calibrated_probs(np.log(raw_probs / (1 - raw_probs)), TEMPERATURE)
    cut = float(np.quantile(probs, 0.3))
    model, info = load_checkpoint(raw)
    paths = {"raw": raw}
    for name, scores in (("cal", probs), ("shifted", np.clip(probs + 0.4, 0, 1))):
        decision = Decision(TEMPERATURE, "youden", {"0.5": 0.5, "youden": cut, "eer": 0.45}, "validation v.csv",
                            {"uncalibrated": 0.2, "calibrated": 0.05}, score_summary(scores))
        paths[name] = save_checkpoint(folder / f"{name}.pt", model, tag=info["tag"], decision=decision)
    return paths, raw_probs, probs, cut


@pytest.mark.slow
def test_stored_temperature_and_threshold_are_what_predict_uses(models, images, tmp_path, capsys):
    from unifiedgender.inference import Predictor

    paths, raw_probs, probs, cut = models
    records = list(Predictor.from_checkpoint(paths["cal"]).predict_paths(images))
    np.testing.assert_allclose([r["prob_male"] for r in records], probs, atol=1e-6)
    assert [r["pred"] for r in records] == ["male" if p >= cut else "female" for p in probs]
    assert any((p >= cut) != (p >= 0.5) for p in probs)  # the stored threshold, not 0.5, decided
    half = Predictor.from_checkpoint(paths["cal"], threshold_policy="0.5")
    assert half.threshold == 0.5
    assert [r["pred"] for r in half.predict_paths(images)] == ["male" if p >= 0.5 else "female" for p in raw_probs]
    assert Predictor.from_checkpoint(paths["cal"], threshold=0.61).threshold == 0.61

    code, text = run_ugn(["predict", images[0].parent, "-c", paths["cal"], "-o", tmp_path / "p.csv"], capsys)
    assert code == 0, text
    written = pd.read_csv(tmp_path / "p.csv")
    assert list(written["pred"]) == ["male" if p >= cut else "female" for p in probs]
    assert f"{cut:.4f} (youden on validation v.csv)" in text
    code, text = run_ugn(["predict", images[0].parent, "-c", paths["cal"], "-t", "0.61", "-o", tmp_path / "q.csv"], capsys)
    assert code == 0 and "0.6100 (given with --threshold)" in text
    assert list(pd.read_csv(tmp_path / "q.csv")["pred"]) == ["male" if p >= 0.61 else "female" for p in probs]


def test_old_checkpoint_without_a_decision_behaves_as_before(models, images, tmp_path, capsys):
    from unifiedgender.inference import Predictor

    paths, raw_probs, _, _ = models
    predictor = Predictor.from_checkpoint(paths["raw"])
    assert predictor.decision == Decision() and predictor.threshold == 0.5
    records = list(predictor.predict_paths(images))
    assert [r["pred"] for r in records] == ["male" if p >= 0.5 else "female" for p in raw_probs]
    code, text = run_ugn(["predict", images[0].parent, "-c", paths["raw"], "--threshold-policy", "youden"], capsys)
    assert code == 2 and "stores no thresholds" in text


def test_onnx_export_carries_the_decision(models, images, tmp_path, capsys):
    import onnx

    from unifiedgender.inference import Predictor
    from unifiedgender.inference.export import export_checkpoint
    from unifiedgender.inference.onnx_io import read_onnx_metadata

    paths, raw_probs, probs, cut = models
    code, text = run_ugn(["export", paths["cal"], "-o", tmp_path / "cal.onnx"], capsys)
    assert code == 0 and f"default threshold: {cut:.4f} (youden on validation v.csv)" in text
    meta = read_onnx_metadata(tmp_path / "cal.onnx")
    from unifiedgender.checkpoint import read_checkpoint

    assert meta["decision"] == Decision.from_dict(read_checkpoint(paths["cal"])["decision"])
    onnx_predictor = Predictor.from_checkpoint(tmp_path / "cal.onnx")
    assert onnx_predictor.threshold == cut
    np.testing.assert_allclose([r["prob_male"] for r in onnx_predictor.predict_paths(images)], probs, atol=1e-5)

    given = export_checkpoint(paths["cal"], "onnx", tmp_path / "given.onnx", threshold=0.3)["threshold"]
    assert given == Threshold(0.3, "fixed", "given")
    stored = read_onnx_metadata(tmp_path / "given.onnx")["decision"]
    assert (stored.policy, stored.threshold().value, stored.temperature) == ("given", 0.3, TEMPERATURE)

    # an export made before decisions were stored: temperature 1 and threshold 0.5
    proto = onnx.load(str(tmp_path / "cal.onnx"))
    kept = [p for p in proto.metadata_props if p.key != "ugn.decision"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    onnx.save(proto, str(tmp_path / "old.onnx"))
    old = Predictor.from_checkpoint(tmp_path / "old.onnx")
    assert old.decision == Decision() and old.threshold == 0.5
    np.testing.assert_allclose([r["prob_male"] for r in old.predict_paths(images)], raw_probs, atol=1e-5)


def test_predict_warns_on_a_shifted_set_and_is_silent_on_a_matching_one(models, images, capsys):
    paths = models[0]
    code, text = run_ugn(["predict", images[0].parent, "-c", paths["cal"]], capsys)
    assert code == 0 and "may not transfer" not in text
    code, text = run_ugn(["predict", images[0].parent, "-c", paths["shifted"]], capsys)
    assert code == 0 and "may not transfer" in text and "validation" in text


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, images):
    from unifiedgender.data.manifest import write_manifest

    rows = [{"path": str(p), "subject_id": f"s{i // 2}", "gender": ("female", "male")[(i // 2) % 2], "modality": "face"}
            for i, p in enumerate(images)]
    path = tmp_path_factory.mktemp("manifest") / "test.csv"
    write_manifest(pd.DataFrame(rows), path)
    return path


@pytest.mark.slow
def test_evaluate_uses_the_stored_threshold_and_reports_ba_at_half_calibration_and_shift(
        models, manifest, tmp_path, monkeypatch, capsys):
    from sklearn.metrics import balanced_accuracy_score

    paths, _, probs, cut = models
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")  # rich tables at full width
    common = ["--data", manifest, "--bootstrap", "50", "--no-plots", "--device", "cpu"]
    args = [*common, "--no-registry"]
    code, text = run_ugn(["evaluate", paths["cal"], "--out", "rep", *common, "--registry", "reg.csv"], capsys)
    assert code == 0, text
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    row = pd.read_csv(tmp_path / "reg.csv").iloc[0]
    assert (row["threshold"], row["threshold_method"], row["temperature"]) == (pytest.approx(cut), "youden", TEMPERATURE)
    assert row["balanced_accuracy_at_0.5"] == pytest.approx(report["image_level"]["at_0.5"]["balanced_accuracy"])
    assert row["shift_warning"] == False  # noqa: E712 (read back from CSV)
    assert report["threshold"] == {"value": cut, "method": "youden", "chosen_on": "validation v.csv"}
    predictions = pd.read_csv(tmp_path / "rep" / "predictions.csv")
    assert list(predictions["pred"]) == ["male" if p >= cut else "female" for p in predictions["prob_male"]]
    y = (predictions["gender"] == "male").astype(int)
    half = report["image_level"]["at_0.5"]
    assert half["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, predictions["prob_male"] >= 0.5))
    assert len(half["balanced_accuracy_ci"]) == 2
    assert report["image_level"]["metrics"]["balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(y, predictions["prob_male"] >= cut))
    calibration = report["calibration"]
    assert calibration["temperature"] == TEMPERATURE
    assert calibration["ece_calibrated"] == pytest.approx(report["image_level"]["metrics"]["ece"])
    raw = calibrated_probs(TEMPERATURE * np.log(predictions["prob_male"] / (1 - predictions["prob_male"])))
    assert calibration["ece_uncalibrated"] == pytest.approx(expected_calibration_error(y, raw))
    assert report["shift"]["shifted"] is False and "may not transfer" not in text
    assert "balanced_accuracy at 0.5" in text and "temperature 2.000" in text
    markdown = (tmp_path / "rep" / "report.md").read_text()
    assert "balanced_accuracy at 0.5" in markdown and "Calibration: temperature 2.000" in markdown

    code, text = run_ugn(["evaluate", paths["shifted"], "--out", "rep2", *args], capsys)
    assert code == 0 and "may not transfer" in text
    assert json.loads((tmp_path / "rep2" / "report.json").read_text())["shift"]["shifted"] is True

    code, text = run_ugn(["evaluate", paths["cal"], "--out", "rep3", "--threshold-policy", "eer", *args], capsys)
    assert code == 0 and json.loads((tmp_path / "rep3" / "report.json").read_text())["threshold"]["value"] == 0.45
    code, text = run_ugn(["evaluate", paths["cal"], "--out", "rep4", "--threshold-policy", "eer", "--threshold", "0.4",
                          *args], capsys)
    assert code == 2 and "--threshold and --threshold-policy exclude each other" in text


def test_evaluate_predictions_file_labels_rows_at_the_report_threshold(tmp_path, monkeypatch, capsys):
    """Regression: predictions.csv beside a report wrote `pred` at 0.5 while the report used another threshold."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(3)
    probs = rng.random(40)
    table = pd.DataFrame({"path": [f"/i/{i}.png" for i in range(40)], "subject_id": [f"s{i}" for i in range(40)],
                          "modality": "face", "gender": np.where(rng.random(40) < probs, "male", "female"),
                          "prob_male": probs, "pred": np.where(probs >= 0.5, "male", "female"), "status": "ok"})
    table.to_csv("t.csv", index=False)
    code, text = run_ugn(["evaluate", "--predictions", "t.csv", "--threshold", "0.3", "--out", "rep", "--bootstrap", "0",
                          "--no-plots", "--no-registry"], capsys)
    assert code == 0, text
    written = pd.read_csv(tmp_path / "rep" / "predictions.csv")
    assert list(written["pred"]) == list(np.where(probs >= 0.3, "male", "female"))
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["image_level"]["confusion"]["tp"] + report["image_level"]["confusion"]["fp"] == int((probs >= 0.3).sum())
    assert "calibration" not in report and "shift" not in report  # a table carries no stored decision


def test_default_policy_is_one_known_setting_that_training_stores():
    from unifiedgender.training.config import TrainConfig

    assert DEFAULT_THRESHOLD_POLICY in THRESHOLD_POLICIES and TrainConfig().threshold_policy == DEFAULT_THRESHOLD_POLICY
