"""dlib's face-recognition ResNet as a backbone (`dlib-face_resnet.v1`): the .dat reader, descriptors equal to
dlib's own on a real face, refusals of other files, and a linear probe trained, framed and exported end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from predict_fixtures import one_torch_thread  # noqa: F401 (autouse fixture)
from unifiedgender.crop.face import FACE_PADDING, face_margin, face_models_file
from unifiedgender.errors import UserError
from unifiedgender.models.backbones import DLIB_FACE_BACKBONE, create_backbone
from unifiedgender.models.dlib_face import DLIB_FACE_FILE, DLIB_FACE_MARGIN, DLIB_INPUT_SIZE, dlib_state_dict

dlib = pytest.importorskip("dlib", reason="dlib's face network needs dlib (pip install 'unifiedgender[faces]')")
SAMPLE = Path(__file__).resolve().parents[1] / "unifiedgender" / "sample"


@pytest.fixture(scope="module")
def weights_file() -> Path:
    path = face_models_file(DLIB_FACE_FILE)
    if path is None:
        pytest.skip(f"{DLIB_FACE_FILE} not installed (pip install face-recognition-models)")
    return path


@pytest.fixture(scope="module")
def backbone(weights_file):
    return create_backbone(DLIB_FACE_BACKBONE)


def dlib_chip(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(dlib's own 150 px chip of the face in `path`, dlib's own descriptor of it)."""
    models = face_models_file(DLIB_FACE_FILE).parent
    rgb = np.asarray(Image.open(path).convert("RGB"))
    rects = dlib.get_frontal_face_detector()(rgb, 1)
    assert len(rects), f"no face in {path}"
    shape = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))(rgb, rects[0])
    chip = dlib.get_face_chip(rgb, shape, DLIB_INPUT_SIZE, DLIB_FACE_MARGIN)
    network = dlib.face_recognition_model_v1(str(models / DLIB_FACE_FILE))
    return chip, np.asarray(network.compute_face_descriptor(chip))


def standardised(chip: np.ndarray, data_config: dict) -> torch.Tensor:
    mean = torch.tensor(data_config["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(data_config["std"]).view(1, 3, 1, 1)
    return (torch.from_numpy(chip.copy()).permute(2, 0, 1)[None].float() / 255 - mean) / std


@pytest.mark.parametrize("face", ["faces/Aicha_El_Ouafi/Aicha_El_Ouafi_0001.jpg", "faces/Bill_Callahan/Bill_Callahan_0001.jpg"])
def test_descriptor_equals_dlibs_own_on_a_real_face(backbone, face):
    chip, expected = dlib_chip(SAMPLE / face)
    with torch.no_grad():
        ours = backbone.module.eval()(standardised(chip, backbone.data_config))[0].numpy()
    assert ours.shape == (128,)
    assert np.abs(ours - expected).max() < 1e-4
    random = create_backbone(DLIB_FACE_BACKBONE, "none").module.eval()
    with torch.no_grad():
        assert np.abs(random(standardised(chip, backbone.data_config))[0].numpy() - expected).max() > 1e-2


def test_backbone_describes_itself(backbone, weights_file):
    assert backbone.name == DLIB_FACE_BACKBONE and backbone.num_features == 128
    assert backbone.weights == str(weights_file)
    config = backbone.data_config
    assert config["input_size"] == [3, 150, 150] and config["face_margin"] == DLIB_FACE_MARGIN
    # (pixel - dlib's channel mean) / 256, as dlib's input layer computes it
    assert np.allclose(np.array(config["mean"]) * 255, [122.782, 117.001, 104.298])
    assert np.allclose(np.array(config["std"]) * 255, 256)
    names = [n for n, _ in backbone.module.named_parameters()]
    grouped = [n for group in backbone.groups for n in group]
    assert sorted(grouped) == sorted(names) and len(backbone.groups) == 1 + 14  # stem + 14 residual blocks


@pytest.mark.parametrize(("name", "kwargs", "message"), [
    ("dlib-face_resnet.v2", {}, "unknown dlib backbone 'dlib-face_resnet.v2'; the one dlib backbone is dlib-face_resnet.v1"),
    ("dlib-hands.v1", {}, "unknown dlib backbone"),
    (DLIB_FACE_BACKBONE, {"in_chans": 1}, "takes 3-channel (RGB) faces, not in_chans=1"),
])
def test_unknown_names_and_options_are_refused(name, kwargs, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        create_backbone(name, "none", **kwargs)


def test_other_files_are_refused_in_one_line(weights_file, tmp_path):
    landmarks = weights_file.with_name("shape_predictor_5_face_landmarks.dat")  # a dlib file, but no network
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(weights_file.read_bytes()[:1_000_000])
    noise = tmp_path / "noise.dat"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8).tobytes())
    huge = tmp_path / "huge.dat"  # a conv record claiming a tensor far larger than the file
    huge.write_bytes(b"\x01\x05con_4\x01\x02" + b"\x04\xff\xff\xff\x7f" * 4 + b"\x00" * 64)
    wrapping = tmp_path / "wrapping.dat"  # dimensions whose product wraps around in 64-bit arithmetic
    wrapping.write_bytes(b"\x01\x05con_4\x01\x02" + b"\x08" + b"\x00" * 7 + b"\x40" + b"\x01\x02" + b"\x01\x01" * 2 + b"\x00" * 64)
    negative = tmp_path / "negative.dat"  # a negative dimension
    negative.write_bytes(b"\x01\x05con_4\x01\x02" + b"\x81\x02" + b"\x01\x01" * 3 + b"\x00" * 64)
    other_pool = tmp_path / "other_pool.dat"  # the real network with a 2x2 stem max pool instead of dlib's 3x3
    record = b"\x01\nmax_pool_2\x01\x03\x01\x03"
    assert weights_file.read_bytes().count(record) == 1
    other_pool.write_bytes(weights_file.read_bytes().replace(record, b"\x01\nmax_pool_2\x01\x02\x01\x02"))
    for path in (landmarks, truncated, noise, huge, wrapping, negative, other_pool):
        with pytest.raises(UserError) as error:
            create_backbone(DLIB_FACE_BACKBONE, path)
        assert str(path) in str(error.value) and "\n" not in str(error.value)
        assert "face-recognition-models" in str(error.value)


def test_weights_from_a_state_dict_file(backbone, tmp_path):
    saved = tmp_path / "backbone.pt"
    torch.save({f"backbone.{k}": v for k, v in backbone.module.state_dict().items()}, saved)  # a ugn checkpoint's layout
    again = create_backbone(DLIB_FACE_BACKBONE, saved)
    assert all(torch.equal(a, b) for a, b in zip(backbone.module.state_dict().values(), again.module.state_dict().values()))
    assert set(dlib_state_dict(face_models_file(DLIB_FACE_FILE))) == set(backbone.module.state_dict())


def test_face_margin_prefers_the_training_framing_then_the_backbones():
    assert face_margin({}) == FACE_PADDING
    assert face_margin({"face_margin": 0.25}) == 0.25
    assert face_margin({"face_margin": 0.25, "face_crop": 0.3}) == 0.3


def faces_manifest(tmp_path: Path) -> tuple[Path, Path]:
    frame = pd.read_csv(SAMPLE / "manifest.csv")
    frame = frame[frame["modality"] == "face"].copy()
    frame["path"] = [str(SAMPLE / p) for p in frame["path"]]
    people = sorted(frame["subject_id"].unique())
    val_people = set(people[::4])
    train, val = tmp_path / "train.csv", tmp_path / "val.csv"
    frame[~frame["subject_id"].isin(val_people)].to_csv(train, index=False)
    frame[frame["subject_id"].isin(val_people)].to_csv(val, index=False)
    return train, val


@pytest.mark.slow
def test_face_recipe_trains_a_linear_probe_with_dlibs_framing_and_exports(weights_file, tmp_path):
    """`ugn train --recipe face` on the bundled faces: the dlib backbone, only the head trains, the checkpoint
    frames faces at dlib's margin, and the ONNX export predicts what the checkpoint predicts."""
    pytest.importorskip("onnxruntime")
    from unifiedgender.checkpoint import load_checkpoint
    from unifiedgender.cli.app import app
    from unifiedgender.data.manifest import read_manifest
    from unifiedgender.inference import predict_manifest
    from unifiedgender.inference.export import export_checkpoint
    from unifiedgender.inference.predictor import Predictor

    train, val = faces_manifest(tmp_path)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train", "--recipe", "face", "--train", str(train), "--val", str(val), "--output", str(out),
        "--epochs", "1", "--batch-size", "8", "--workers", "0", "--cache", "memory"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    model, info = load_checkpoint(out / "best.pt")
    assert (info["tag"], info["arch"], info["config"]["lr"]) == (f"{DLIB_FACE_BACKBONE}_F0_An_Lw_Z1", "classifier", 0.01)
    assert info["data_config"]["face_crop"] == DLIB_FACE_MARGIN and info["data_config"]["input_size"][1:] == [150, 150]
    original = dlib_state_dict(weights_file)
    assert all(torch.equal(v, original[k]) for k, v in model.backbone.state_dict().items())  # Z1: backbone untouched
    assert "129 of" in (out / "train.log").read_text()  # 128 weights + 1 bias
    onnx = export_checkpoint(out / "best.pt", "onnx", tmp_path / "probe.onnx")["output"]
    faces = read_manifest(val)
    by_torch = predict_manifest(Predictor.from_checkpoint(out / "best.pt", engine="torch", workers=1), faces)
    by_onnx = predict_manifest(Predictor.from_checkpoint(onnx, workers=1), faces)
    assert np.allclose(by_torch["prob_male"], by_onnx["prob_male"], atol=1e-4)
