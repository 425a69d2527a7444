"""`ugn predict --detect face` and the automatic face framing of checkpoints trained with face_crop, on real LFW
photos (skipped where ../shared/data is absent) and tiny images."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from predict_fixtures import make_checkpoint, one_torch_thread, run_ugn  # noqa: F401 (autouse fixture)
from unifiedgender.checkpoint import load_checkpoint, save_checkpoint
from unifiedgender.crop.face import FACE_PADDING, face_detector
from unifiedgender.inference.predictor import Predictor
from unifiedgender.inference.run import run_predict

pytest.importorskip("dlib", reason="the face detector needs dlib (pip install 'unifiedgender[faces]')")

MAN = "lfw-deepfunneled/Aaron_Eckhart/Aaron_Eckhart_0001.jpg"
WOMAN = "lfw-deepfunneled/Angelina_Jolie/Angelina_Jolie_0001.jpg"


@pytest.fixture(scope="module")
def photos(shared_data, tmp_path_factory) -> Path:
    """A folder: one LFW photo, two LFW photos side by side on one canvas, a blank image and a broken file."""
    man, woman = shared_data / "lfw_gender" / MAN, shared_data / "lfw_gender" / WOMAN
    if not (man.is_file() and woman.is_file()):
        pytest.skip("LFW photos not found in ../shared/data/lfw_gender")
    folder = tmp_path_factory.mktemp("photos")
    shutil.copy(man, folder / "single.jpg")
    canvas = Image.new("RGB", (560, 300), (200, 200, 200))
    canvas.paste(Image.open(man), (20, 25))
    canvas.paste(Image.open(woman), (290, 25))
    canvas.save(folder / "pair.png")
    Image.new("RGB", (40, 30), (90, 90, 90)).save(folder / "blank.png")
    (folder / "broken.jpg").write_bytes(b"not an image")
    return folder


@pytest.fixture(scope="module")
def framed_checkpoint(tmp_path_factory) -> Path:
    """A tiny classifier whose data config asks for the face framing (as `ugn train --face-crop` records it)."""
    path = make_checkpoint(tmp_path_factory.mktemp("ckpt") / "plain.pt", arch="classifier")
    model, info = load_checkpoint(path)
    model.data_config = {**info["data_config"], "face_crop": FACE_PADDING}
    return save_checkpoint(path.with_name("framed.pt"), model, tag=info["tag"])


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_one_row_per_face_with_boxes_and_a_no_face_status(photos, framed_checkpoint, tmp_path):
    out = tmp_path / "pred.csv"
    summary = run_predict([str(photos)], framed_checkpoint, output=out, annotate=tmp_path / "ann", detect="face",
                          engine="torch", workers=1)
    rows = read_rows(out)
    by_file: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_file.setdefault(Path(row["path"]).name, []).append(row)
    pair = by_file["pair.png"]
    assert [r["face"] for r in pair] == ["1", "2"] and all(r["status"] == "ok" for r in pair)
    lefts = sorted(int(r["x0"]) for r in pair)
    assert lefts[0] < 270 <= lefts[1]  # one face on each photo of the canvas
    assert all(0 <= float(r["prob_male"]) <= 1 and float(r["face_score"]) > 0 for r in pair)
    assert by_file["blank.png"] == [{**by_file["blank.png"][0], "status": "no face found", "face": "", "prob_male": ""}]
    assert by_file["broken.jpg"][0]["status"].startswith("not an image")
    assert (summary.n_images, summary.n_ok, summary.n_no_face, summary.n_failed) == (4, 3, 1, 1)
    assert summary.note is None  # the model was trained with the face framing
    annotated = np.asarray(Image.open(tmp_path / "ann" / "pair.png").convert("RGB"), dtype=np.int16)
    original = np.asarray(Image.open(photos / "pair.png").convert("RGB"), dtype=np.int16)
    row = pair[0]
    assert np.abs(annotated[int(row["y0"]) + 5, int(row["x0"])] - original[int(row["y0"]) + 5, int(row["x0"])]).sum() > 60
    assert not (tmp_path / "ann" / "blank.png").exists() and summary.annotated == 2


def test_detected_face_gets_the_same_prediction_as_the_automatic_framing(photos, framed_checkpoint):
    """--detect face on a one-face photo and plain prediction with a face_crop checkpoint frame the face alike."""
    predictor = Predictor.from_checkpoint(framed_checkpoint, engine="torch", workers=1)
    automatic = next(predictor.predict_paths([photos / "single.jpg"], modality="face"))["prob_male"]
    from unifiedgender.inference.faces import predict_faces

    (face,) = next(predict_faces(predictor, [photos / "single.jpg"]))
    assert face["face"] == 1 and face["prob_male"] == pytest.approx(automatic, abs=1e-5)
    # the automatic framing really changes the input: the photo as it is gives another score
    image = Image.open(photos / "single.jpg")
    assert predictor.predict_images([image], "face", framed=True)[0] != pytest.approx(automatic, abs=1e-4)
    chip = face_detector(FACE_PADDING).frame(image)[0]
    assert predictor.predict_images([chip], "face", framed=True)[0] == pytest.approx(automatic, abs=1e-5)


@pytest.mark.slow
def test_cli_detect_face_and_its_errors(photos, tmp_path, capsys):
    plain = make_checkpoint(tmp_path / "plain.pt", arch="classifier")
    code, text = run_ugn(["predict", photos / "single.jpg", "-c", plain, "--detect", "face", "--engine", "torch"], capsys)
    assert code == 0, text
    assert "face 1 at" in text and "trained without face framing" in text
    code, text = run_ugn(["predict", photos / "blank.png", "-c", plain, "--detect", "face", "--engine", "torch"], capsys)
    assert code == 0 and "no face" in text and "no face found in 1 images" in text
    code, text = run_ugn(["predict", photos / "single.jpg", "-c", plain, "--detect", "hands"], capsys)
    assert code == 2 and "--detect 'hands' is not supported; use face" in text


@pytest.mark.slow
def test_face_crop_survives_checkpoint_and_onnx_export(framed_checkpoint, tmp_path):
    pytest.importorskip("onnxruntime")
    from unifiedgender.inference.export import export_checkpoint
    from unifiedgender.inference.onnx_io import read_onnx_metadata

    _, info = load_checkpoint(framed_checkpoint)
    assert info["data_config"]["face_crop"] == FACE_PADDING
    onnx = export_checkpoint(framed_checkpoint, "onnx", tmp_path / "m.onnx")["output"]
    assert read_onnx_metadata(onnx)["data_config"]["face_crop"] == FACE_PADDING
    assert Predictor.from_checkpoint(onnx, workers=1).transform.frame is not None


@pytest.mark.slow
def test_train_face_crop_records_the_framing_and_frames_validation(shared_data, tmp_path):
    """`ugn train --face-crop` on real LFW photos: the checkpoint keeps the margin, validation was framed, and
    evaluating the checkpoint on the raw photos reproduces the stored validation predictions."""
    import pandas as pd
    from typer.testing import CliRunner

    from test_train_support import TINY
    from unifiedgender.cli.app import app
    from unifiedgender.data.importers import import_dataset
    from unifiedgender.data.manifest import read_manifest, write_manifest
    from unifiedgender.inference import predict_manifest

    frame = import_dataset("lfw", shared_data / "lfw_gender")[0].frame
    frame = frame[frame["subject_id"].str.startswith("Al")].groupby("subject_id").head(1)
    frame = pd.concat([g.head(10) for _, g in frame.groupby("gender")], ignore_index=True)
    train = write_manifest(frame.iloc[::2].reset_index(drop=True), tmp_path / "train.csv")
    val = write_manifest(frame.iloc[1::2].reset_index(drop=True), tmp_path / "val.csv")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train", "--tag", f"{TINY}_F0_An_Lb_Z0", "--arch", "classifier", "--train", str(train), "--val", str(val),
        "--out", str(out), "--epochs", "1", "--batch-size", "4", "--image-size", "32", "--pretrained", "none",
        "--workers", "0", "--cache", "memory", "--face-crop"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    _, info = load_checkpoint(out / "best.pt")
    assert info["data_config"]["face_crop"] == FACE_PADDING and info["config"]["face_crop"] is True
    assert "framed on their faces" in (out / "train.log").read_text()
    stored = pd.read_csv(out / "val_predictions.csv")
    again = predict_manifest(Predictor.from_checkpoint(out / "best.pt", engine="torch", workers=1), read_manifest(val))
    assert np.allclose(stored["prob_male"], again["prob_male"], atol=1e-3)
