"""ridge_classifier: the ridge-spectrum branch finds a print's ridge frequency, the model trains on real SOCOFing
prints beside its CNN, and exports to ONNX with the branch inside."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from predict_fixtures import one_torch_thread  # noqa: F401 (autouse fixture)
from test_train_support import TINY
from unifiedgender.models import create_model
from unifiedgender.models.ridge_classifier import SPECTRUM_FEATURES, SPECTRUM_RINGS, SPECTRUM_SIZE, RidgeSpectrum


def grating(cycles: float, size: int = 96, angle: float = 0.3) -> torch.Tensor:
    """A [1,3,size,size] sinusoidal 'ridge pattern' with `cycles` ridges across the image, at `angle`."""
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    phase = 2 * math.pi * cycles * (x * math.cos(angle) + y * math.sin(angle)) / size
    return torch.sin(phase).expand(1, 3, size, size).clone()


@pytest.mark.parametrize("cycles", [6, 10, 16])
def test_spectrum_peaks_at_the_ridge_frequency_whatever_the_size_and_contrast(cycles):
    spectrum = RidgeSpectrum()
    for size, gain, offset in ((96, 1.0, 0.0), (160, 3.0, 0.7)):
        features = spectrum(grating(cycles, size) * gain + offset)
        assert features.shape == (1, SPECTRUM_FEATURES)
        ring_powers = features[0, :SPECTRUM_RINGS]
        assert int(ring_powers.argmax()) + 1 == cycles  # ring k = k cycles per window, at any input size
        assert abs(float(features[0, -1]) - cycles / SPECTRUM_RINGS) < 0.12  # centroid near the ridge frequency
    finer, coarser = spectrum(grating(14)), spectrum(grating(8))
    assert float(finer[0, -1]) > float(coarser[0, -1])  # denser ridges, higher centroid


def test_spectrum_is_the_same_under_autocast():
    spectrum, images = RidgeSpectrum(), grating(9) + 0.1 * torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = spectrum(images)
    assert low.dtype == torch.float32 and torch.allclose(low, spectrum(images), atol=1e-5)


def test_the_head_sees_cnn_and_ridge_features_and_the_state_dict_keeps_no_constants():
    model = create_model("ridge_classifier", TINY, pretrained="none", image_size=64).eval()
    backbone_features = model.backbone(torch.zeros(1, 3, 64, 64)).shape[1]
    assert model.head[1].in_features == backbone_features + SPECTRUM_FEATURES
    assert not any(k.startswith("spectrum.") for k in model.state_dict())  # DFT matrices are rebuilt, not stored
    out = model(grating(8, 64))["logit"]
    assert out.shape == (1,) and torch.isfinite(out).all()
    # the logit depends on the ridge branch: zeroing its head weights changes it
    with torch.no_grad():
        model.head[1].weight[:, -SPECTRUM_FEATURES:] = 0
    assert not torch.allclose(out, model(grating(8, 64))["logit"])


@pytest.mark.slow
def test_trains_on_real_prints_and_exports_with_the_branch(shared_data, tmp_path):
    pytest.importorskip("onnxruntime")
    from unifiedgender.checkpoint import load_checkpoint
    from unifiedgender.cli.app import app
    from unifiedgender.data.importers import import_dataset
    from unifiedgender.data.manifest import read_manifest, write_manifest
    from unifiedgender.inference import predict_manifest
    from unifiedgender.inference.export import export_checkpoint
    from unifiedgender.inference.predictor import Predictor

    if not (shared_data / "socofing" / "Real").is_dir():
        pytest.skip("SOCOFing not found in ../shared/data/socofing")
    frame = import_dataset("socofing", shared_data / "socofing" / "Real")[0].frame
    people = sorted(frame["subject_id"].unique())[:12]
    frame = frame[frame["subject_id"].isin(people)].groupby("subject_id").head(4).reset_index(drop=True)
    train = write_manifest(frame[frame["subject_id"].isin(people[:8])], tmp_path / "train.csv")
    val = write_manifest(frame[frame["subject_id"].isin(people[8:])], tmp_path / "val.csv")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train", "--tag", f"{TINY}_F0_An_Lb_Z0", "--arch", "ridge_classifier", "--train", str(train), "--val", str(val),
        "--output", str(out), "--epochs", "1", "--batch-size", "8", "--image-size", "64", "--pretrained", "none",
        "--workers", "0", "--cache", "memory"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    model, info = load_checkpoint(out / "best.pt")
    assert info["arch"] == "ridge_classifier" and type(model).__name__ == "RidgeClassifier"
    assert float(model.spectrum_norm.running_mean.abs().sum()) > 0  # the branch's statistics were learned on prints
    onnx = export_checkpoint(out / "best.pt", "onnx", tmp_path / "ridge.onnx")["output"]
    prints = read_manifest(val)
    by_torch = predict_manifest(Predictor.from_checkpoint(out / "best.pt", engine="torch", workers=1), prints)
    by_onnx = predict_manifest(Predictor.from_checkpoint(onnx, workers=1), prints)
    assert np.allclose(by_torch["prob_male"], by_onnx["prob_male"], atol=1e-4)
    assert pd.Series(by_torch["prob_male"]).nunique() > 1
