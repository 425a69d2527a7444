"""The offline face detector (dlib HOG + 5-point alignment) on real LFW/UTKFace images and on tiny images; the
`face_crop` framing of data configs; `ugn crop --detector face`."""

from __future__ import annotations

import csv
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from unifiedgender.cli.app import app
from unifiedgender.crop.face import FACE_CHIP_SIZE, FACE_PADDING, FaceDetector, face_detector
from unifiedgender.crop.framers import STATUS_NO_FACE_KEPT, FaceFramer
from unifiedgender.data.cache import Geometry, cache_key, decode_image
from unifiedgender.data.manifest import read_manifest
from unifiedgender.data.transforms import build_eval_transform
from unifiedgender.errors import UserError

REPO = Path(__file__).resolve().parents[1]
pytest.importorskip("dlib", reason="the face detector needs dlib (pip install 'unifiedgender[faces]')")

LFW_FACE = "lfw-deepfunneled/Aaron_Eckhart/Aaron_Eckhart_0001.jpg"
UTK_CHIP = "25_0_0_20170113181534141.jpg.chip.jpg"  # a man aged 25, white


@pytest.fixture(scope="module")
def lfw_image(shared_data) -> Path:
    path = shared_data / "lfw_gender" / LFW_FACE
    if not path.is_file():
        pytest.skip(f"{path} not found (LFW in ../shared/data/lfw_gender)")
    return path


@pytest.fixture(scope="module")
def utk_image(shared_data) -> Path:
    folder = shared_data / "utkface_dev" / "UTKFace"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found (utkface_dev in ../shared/data)")
    if not (folder / UTK_CHIP).is_file():
        pytest.skip(f"{folder / UTK_CHIP} not found (utkface_dev in ../shared/data)")
    return folder / UTK_CHIP


def blank(size: int = 64) -> Image.Image:
    return Image.new("RGB", (size, size), (128, 128, 128))


def test_finds_and_aligns_the_lfw_face_in_the_middle(lfw_image):
    rgb = np.asarray(Image.open(lfw_image).convert("RGB"))
    detector = face_detector()
    faces = detector.detect(rgb)
    assert len(faces) >= 1
    face = faces[0]
    # LFW's deep-funneled frames hold the face in the middle of the 250 px image
    assert 60 < face.box.x0 < 125 < face.box.x1 < 190 and 60 < face.box.y0 < 125 < face.box.y1 < 200
    assert 60 < face.side < 200 and abs(face.angle) < 0.5
    chip = detector.align(rgb, face)
    assert chip.shape == (FACE_CHIP_SIZE, FACE_CHIP_SIZE, 3) and chip.dtype == np.uint8
    # the aligned chip is itself a face in the canonical framing: detecting on it finds one face near the middle
    again = detector.detect(chip)
    assert again and abs((again[0].box.x0 + again[0].box.x1) / 2 - FACE_CHIP_SIZE / 2) < FACE_CHIP_SIZE * 0.1


def test_utk_chip_and_lfw_photo_get_the_same_framing(lfw_image, utk_image):
    """The face fills a UTKFace chip but only the middle of an LFW frame; framed, both faces have the same size."""
    detector = face_detector()
    sides = []
    for path in (lfw_image, utk_image):
        framed, face = detector.frame(Image.open(path))
        assert face is not None and framed.size == (FACE_CHIP_SIZE, FACE_CHIP_SIZE)
        inner = detector.detect(np.asarray(framed))[0]
        sides.append(inner.box.x1 - inner.box.x0)
    assert abs(sides[0] - sides[1]) / max(sides) < 0.2


def test_no_face_keeps_the_image_and_says_so():
    for image in (blank(64), blank(8), Image.new("L", (20, 12), 0)):
        framed, face = face_detector().frame(image)
        assert face is None and framed is image
    framing = FaceFramer().frame(np.asarray(blank(32)), preview=True)
    assert framing.status == STATUS_NO_FACE_KEPT == "no face found: kept uncropped"
    assert framing.box is None and framing.crop.shape == (32, 32, 3)


def test_alignment_repeats_edges_where_the_square_leaves_the_image(utk_image):
    """A tight chip: the framing square reaches past the border and the pixels there repeat the edge."""
    detector = FaceDetector(padding=0.6)
    rgb = np.asarray(Image.open(utk_image).convert("RGB"))
    face = detector.detect(rgb)[0]
    assert face.side > rgb.shape[0]  # the square is larger than the chip itself
    chip = detector.align(rgb, face)
    assert chip.shape == (FACE_CHIP_SIZE, FACE_CHIP_SIZE, 3)
    assert (chip.max(axis=2) == 0).mean() < 0.01  # no black frame (zero fill would cover the outer ring)
    edge = np.asarray(Image.open(utk_image).convert("RGB"))[0].reshape(-1, 3)
    assert np.abs(chip[0, :, None, :].astype(int) - edge[None, :, :]).sum(axis=2).min(axis=1).mean() < 30


def test_detector_settings_are_checked():
    with pytest.raises(UserError, match="chip size"):
        FaceDetector(chip_size=4)
    with pytest.raises(UserError, match="padding"):
        FaceDetector(padding=-0.1)


@pytest.mark.slow
def test_data_config_face_crop_frames_before_the_eval_transform(lfw_image):
    plain = {"input_size": [3, 64, 64], "mean": [0.5] * 3, "std": [0.25] * 3, "interpolation": "bicubic", "crop_pct": 1.0}
    framed = {**plain, "face_crop": FACE_PADDING}
    image = Image.open(lfw_image).convert("RGB")
    expected = build_eval_transform(plain)(face_detector(FACE_PADDING).frame(image)[0])
    transform = build_eval_transform(framed)
    torch.testing.assert_close(transform(image), expected)
    assert not torch.allclose(build_eval_transform(plain)(image), expected)
    assert pickle.loads(pickle.dumps(transform))(image).shape == (3, 64, 64)  # travels to loader workers
    with pytest.raises(UserError, match="face_crop"):
        build_eval_transform({**plain, "face_crop": "yes"})


def test_cache_decodes_with_the_same_face_framing(lfw_image):
    plain = {"input_size": [3, 48, 48], "mean": [0.0] * 3, "std": [1.0] * 3, "interpolation": "bicubic", "crop_pct": 1.0}
    geometry = Geometry.from_data_config({**plain, "face_crop": FACE_PADDING})
    assert geometry.face_crop == FACE_PADDING and geometry.data_config()["face_crop"] == FACE_PADDING
    decoded = decode_image(str(lfw_image), geometry)
    expected = build_eval_transform({**plain, "face_crop": FACE_PADDING})(Image.open(lfw_image)) * 255
    assert decoded.shape == (3, 48, 48)
    assert np.abs(decoded.astype(np.float64) - expected.numpy()).max() <= 1.0
    assert cache_key([str(lfw_image)], geometry) != cache_key([str(lfw_image)], Geometry.from_data_config(plain))


@pytest.mark.slow
def test_crop_cli_face_detector_on_a_folder_and_a_manifest(tmp_path, lfw_image, utk_image):
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    shutil.copy(lfw_image, images / "lfw.jpg")
    shutil.copy(utk_image, images / "sub" / "utk.jpg")
    blank(40).save(images / "blank.png")
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    runner = CliRunner()
    result = runner.invoke(app, ["crop", str(images), "-o", str(tmp_path / "out"), "--detector", "face", "--preview"])
    assert result.exit_code == 1, result.output  # the broken file
    with open(tmp_path / "out" / "boxes.csv", newline="") as handle:
        rows = {row["path"]: row for row in csv.DictReader(handle)}
    assert rows["lfw.jpg"]["status"] == "ok" and float(rows["lfw.jpg"]["score"]) > 0 and rows["lfw.jpg"]["points"] == ""
    assert 60 < int(rows["lfw.jpg"]["x0"]) < int(rows["lfw.jpg"]["x1"]) < 200
    assert rows["sub/utk.jpg"]["status"] == "ok"
    assert rows["blank.png"]["status"] == "no face found: kept uncropped" and rows["blank.png"]["x0"] == ""
    assert rows["broken.jpg"]["status"].startswith("failed: unreadable image")
    assert Image.open(tmp_path / "out" / "lfw.jpg").size == (FACE_CHIP_SIZE, FACE_CHIP_SIZE)
    assert Image.open(tmp_path / "out" / "blank.png").size == (40, 40)
    assert (tmp_path / "out" / "previews" / "lfw.jpg.png").is_file()

    manifest = tmp_path / "faces.csv"
    pd.DataFrame({"path": [str(images / "lfw.jpg"), str(images / "sub" / "utk.jpg")], "subject_id": ["a", "b"],
                  "gender": ["male", "female"], "modality": "face"}).to_csv(manifest, index=False)
    result = runner.invoke(app, ["crop", str(manifest), "-o", str(tmp_path / "mout"), "--detector", "face"])
    assert result.exit_code == 0, result.output
    cropped = read_manifest(tmp_path / "mout" / "faces.csv")
    assert [Image.open(p).size for p in cropped["path"]] == [(FACE_CHIP_SIZE, FACE_CHIP_SIZE)] * 2


@pytest.mark.slow
def test_crop_cli_refuses_sam_options_with_the_face_detector(tmp_path, lfw_image):
    (tmp_path / "images").mkdir()
    shutil.copy(lfw_image, tmp_path / "images" / "a.jpg")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for extra, message in ((["--detector", "face", "--save-masks"], "belong to --detector sam"),
                           (["--detector", "yolo"], "use sam or face")):
        result = subprocess.run([sys.executable, "-m", "unifiedgender", "crop", str(tmp_path / "images"), "-o",
                                 str(tmp_path / "o"), *extra], env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "o").exists()
