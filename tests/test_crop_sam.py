"""The real SAM2 code path (random weights, 256 px, CPU): checkpoint loading, prediction, folder/manifest crops, CLI."""

from __future__ import annotations

import csv
import os
import pickle
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
from unifiedgender.crop.framers import SamFramer
from unifiedgender.crop.pipeline import CropOptions, prepare_crop, run_crop
from unifiedgender.crop.postprocess import Box, bounding_box
from unifiedgender.crop.sam import build_sam2_model, load_predictor, predict_best_mask
from unifiedgender.data.manifest import read_manifest
from unifiedgender.errors import UserError

REPO = Path(__file__).resolve().parents[1]
SIZE = 256


@pytest.fixture(scope="session")
def sam_checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised SAM2.1 tiny at 256 px, saved in the official {"model": state_dict} format."""
    torch.manual_seed(0)
    model = build_sam2_model("sam2.1_hiera_t", image_size=SIZE, device="cpu")
    path = tmp_path_factory.mktemp("sam2") / "sam2.1_hiera_tiny_random256.pt"
    torch.save({"model": model.state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def predictor(sam_checkpoint):
    return load_predictor(sam_checkpoint, "sam2.1_hiera_t", image_size=SIZE, device="cpu")


def sam(predictor, options: CropOptions) -> SamFramer:
    return SamFramer(predictor, options.n_points, options.point_spacing, options.dilate_radius)


def object_image(width: int = 64, height: int = 48, seed: int = 0) -> np.ndarray:
    """A textured background with a bright ellipse in the middle."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 80, size=(height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:height, :width]
    inside = ((xx - width / 2) / (width / 3)) ** 2 + ((yy - height / 2) / (height / 3)) ** 2 <= 1
    image[inside] = (220, 180, 140)
    return image


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as handle:
        return {row["path"]: row for row in csv.DictReader(handle)}


def test_checkpoint_round_trip_loads_the_saved_weights(sam_checkpoint, predictor):
    saved = torch.load(sam_checkpoint, weights_only=True)["model"]
    loaded = predictor.model.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[k], saved[k]) for k in ("sam_mask_decoder.iou_prediction_head.layers.0.weight", "image_encoder.trunk.pos_embed"))
    assert predictor.model.image_size == SIZE and not predictor.model.training
    assert predictor._bb_feat_sizes == [(64, 64), (32, 32), (16, 16)]


def test_predict_best_mask_returns_the_top_scoring_mask(predictor):
    image = object_image()
    points = np.array([[32.0, 24.0]], dtype=np.float32)
    mask, score = predict_best_mask(predictor, image, points)
    assert mask.shape == (48, 64) and set(np.unique(mask)) <= {0.0, 1.0}
    with torch.inference_mode():
        masks, scores, _ = predictor.predict(point_coords=points, point_labels=np.array([1]), multimask_output=True)
    assert len(scores) == 3 and score == pytest.approx(float(scores.max()))
    np.testing.assert_array_equal(mask, masks[int(np.argmax(scores))])
    gray_mask, _ = predict_best_mask(predictor, Image.fromarray(image).convert("L"), points)  # gray input accepted
    assert gray_mask.shape == (48, 64)


def test_missing_or_bad_checkpoints_are_user_errors(tmp_path):
    with pytest.raises(UserError, match=r"--checkpoint is required.*dl\.fbaipublicfiles\.com/segment_anything_2/092824/sam2\.1_hiera_tiny\.pt"):
        load_predictor(None)
    with pytest.raises(UserError, match=r"checkpoint not found: .*nope\.pt.*sam2\.1_hiera_large\.pt"):
        load_predictor(tmp_path / "nope.pt", config="sam2.1_hiera_l")
    with pytest.raises(UserError, match="not a SAM2 config; use one of sam2.1_hiera_t"):
        load_predictor(tmp_path / "nope.pt", config="hiera_xxl")
    no_model = tmp_path / "no_model.pt"
    torch.save({"state_dict": {}}, no_model)
    with pytest.raises(UserError, match="expected a dict with a 'model' state dict"):
        load_predictor(no_model, image_size=SIZE, device="cpu")
    partial = tmp_path / "partial.pt"
    torch.save({"model": {"image_encoder.trunk.pos_embed": torch.zeros(1)}}, partial)
    with pytest.raises(UserError, match=r"partial.pt \(SAM2 --config sam2.1_hiera_t\): weights do not match the model: "
                       r"missing keys: .*shape mismatches: image_encoder.trunk.pos_embed .*pass the --config the checkpoint"):
        load_predictor(partial, image_size=SIZE, device="cpu")
    unsafe = tmp_path / "unsafe.pt"
    with open(unsafe, "wb") as handle:
        pickle.dump({"model": Path("x")}, handle, protocol=2)  # an arbitrary object: refused by weights_only=True
    with pytest.raises(UserError, match="not a loadable SAM2 checkpoint"):
        load_predictor(unsafe, image_size=SIZE, device="cpu")
    with pytest.raises(UserError, match="--image-size 100"):
        build_sam2_model(image_size=100)


def test_empty_mask_keeps_the_image_uncropped(tmp_path, sam_checkpoint):
    """Zeroed hypernetwork heads make every mask logit 0, so SAM2 returns empty masks."""
    predictor = load_predictor(sam_checkpoint, image_size=SIZE, device="cpu")
    with torch.no_grad():
        for param in predictor.model.sam_mask_decoder.output_hypernetworks_mlps.parameters():
            param.zero_()
    (tmp_path / "in").mkdir()
    Image.fromarray(object_image(40, 30)).save(tmp_path / "in" / "a.png")
    options = CropOptions(save_masks=True)
    summary = run_crop(sam(predictor, options), prepare_crop(tmp_path / "in", tmp_path / "out", options))
    row = read_rows(tmp_path / "out" / "boxes.csv")["a.png"]
    assert row["status"] == "empty mask: kept uncropped"
    assert (row["x0"], row["y0"], row["x1"], row["y1"]) == ("0", "0", "40", "30")
    assert summary.counts == {"empty mask: kept uncropped": 1} and not summary.failed
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png")), object_image(40, 30))
    assert np.asarray(Image.open(tmp_path / "out" / "masks" / "a.png.png")).max() == 0


def make_folder(root: Path) -> None:
    """Three readable images (one gray, one RGBA, one in a subfolder) and one corrupt file."""
    (root / "sub").mkdir(parents=True)
    Image.fromarray(object_image(64, 48, seed=1)).save(root / "a.png")
    Image.fromarray(object_image(50, 70, seed=2)).convert("L").save(root / "sub" / "b.png")
    Image.fromarray(object_image(40, 40, seed=3)).convert("RGBA").save(root / "sub" / "c.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")


def ugn(*args: str) -> subprocess.CompletedProcess:
    """The real entry point in a fresh interpreter (exit codes and stderr as a user sees them)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "unifiedgender", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_crops_a_folder_then_resumes(tmp_path, sam_checkpoint):
    source, out = tmp_path / "images", tmp_path / "crops"
    make_folder(source)
    args = ["crop", str(source), "-o", str(out), "--points", "5", "--checkpoint", str(sam_checkpoint),
            "--image-size", str(SIZE), "--device", "cpu", "--save-masks", "--preview"]
    first = ugn(*args)
    assert first.returncode == 1, first.stderr  # the corrupt file fails, the run goes on
    assert "broken.jpg: failed: unreadable image" in first.stderr
    rows = read_rows(out / "boxes.csv")
    assert list(rows) == ["a.png", "broken.jpg", "sub/b.png", "sub/c.png"]
    assert rows["broken.jpg"]["status"].startswith("failed: unreadable image: ")
    assert not (out / "broken.jpg").exists()
    statuses = [rows[p]["status"] for p in ("a.png", "sub/b.png", "sub/c.png")]
    assert set(statuses) <= {"ok", "empty mask: kept uncropped"} and "ok" in statuses
    for rel in ("a.png", "sub/b.png", "sub/c.png"):
        row = rows[rel]
        box = Box(*(int(row[k]) for k in ("x0", "y0", "x1", "y1")))
        assert row["points"] == "5" and 0 <= float(row["score"]) <= 1.5
        original = np.asarray(Image.open(source / rel).convert("RGB"))
        crop = Image.open(out / rel)
        assert crop.size == (box.x1 - box.x0, box.y1 - box.y0)
        np.testing.assert_array_equal(np.asarray(crop.convert("RGB")), original[box.y0 : box.y1, box.x0 : box.x1])
        mask = np.asarray(Image.open(out / "masks" / f"{rel}.png"))
        assert mask.shape == original.shape[:2]
        if row["status"] == "ok":
            assert bounding_box(mask) == box
        preview = Image.open(out / "previews" / f"{rel}.png")
        assert preview.size == (original.shape[1], original.shape[0])
        assert not np.array_equal(np.asarray(preview.convert("RGB")), original)  # something was drawn
    assert Image.open(out / "sub" / "b.png").mode == "L"  # gray stays gray

    mtimes = {rel: (out / rel).stat().st_mtime_ns for rel in ("a.png", "sub/b.png", "sub/c.png")}
    second = CliRunner().invoke(app, args)  # in-process from here on, to keep the test fast
    assert second.exit_code == 1  # the corrupt file is retried and fails again
    assert "3 skipped" in second.stdout and "1 failed" in second.stdout
    assert read_rows(out / "boxes.csv") == rows  # boxes of skipped crops are carried over
    assert {rel: (out / rel).stat().st_mtime_ns for rel in mtimes} == mtimes

    (source / "broken.jpg").unlink()
    third = CliRunner().invoke(app, [*args, "--overwrite"])
    assert third.exit_code == 0, third.output
    assert "skipped" not in third.stdout
    assert list(read_rows(out / "boxes.csv")) == ["a.png", "sub/b.png", "sub/c.png"]


def test_manifest_input_writes_a_manifest_of_the_crops(tmp_path, predictor):
    make_folder(tmp_path / "data" / "imgs")
    rows = [("imgs/a.png", "s1", "male"), ("imgs/sub/b.png", "s2", "female"), ("imgs/broken.jpg", "s3", "female"),
            ("imgs/gone.png", "s4", "male")]
    frame = pd.DataFrame(rows, columns=["path", "subject_id", "gender"]).assign(modality="fluting_tactile", site=list("xyzw"))
    frame.to_csv(tmp_path / "data" / "flutings.csv", index=False)
    out = tmp_path / "out"
    summary = run_crop(sam(predictor, CropOptions()), prepare_crop(tmp_path / "data" / "flutings.csv", out, CropOptions(n_points=1)))
    assert [r.path for r in summary.failed] == ["imgs/broken.jpg", "imgs/gone.png"]
    assert summary.failed[1].status.startswith("failed: unreadable image: cannot open")
    assert summary.manifest == out / "flutings.csv"
    cropped = read_manifest(summary.manifest)
    assert list(cropped.columns) == ["path", "subject_id", "gender", "modality", "site"]
    assert cropped["path"].tolist() == [str(out / "imgs/a.png"), str(out / "imgs/sub/b.png")]
    assert cropped["site"].tolist() == ["x", "y"] and cropped["subject_id"].tolist() == ["s1", "s2"]
    assert not (out / "masks").exists() and not (out / "previews").exists()


def test_cli_user_errors(tmp_path):
    make_folder(tmp_path / "images")
    missing = ugn("crop", str(tmp_path / "images"), "-o", str(tmp_path / "out"))
    assert missing.returncode == 2
    assert "--checkpoint is required" in missing.stderr and "sam2.1_hiera_tiny.pt" in missing.stderr
    fake = tmp_path / "fake.pt"
    fake.write_bytes(b"x")
    inside = ugn("crop", str(tmp_path / "images"), "-o", str(tmp_path / "images" / "out"), "--checkpoint", str(fake))
    assert inside.returncode == 2 and "lies inside the input" in inside.stderr
    points = ugn("crop", str(tmp_path / "images"), "-o", str(tmp_path / "out"), "--checkpoint", str(fake), "--points", "2")
    assert points.returncode == 2 and "--points 2 is not supported" in points.stderr
    nothing = ugn("crop", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out"), "--checkpoint", str(fake))
    assert nothing.returncode == 2 and "input not found" in nothing.stderr
    assert not (tmp_path / "out").exists()


def test_interrupted_run_keeps_its_boxes_and_resumes(tmp_path, predictor):
    make_folder(tmp_path / "images")
    (tmp_path / "images" / "broken.jpg").unlink()
    job = prepare_crop(tmp_path / "images", tmp_path / "out", CropOptions())

    def stop(result):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_crop(sam(predictor, job.options), job, on_result=stop)
    first = read_rows(tmp_path / "out" / "boxes.csv")
    assert list(first) == ["a.png"]
    summary = run_crop(sam(predictor, job.options), job)
    assert summary.counts.get("skipped") == 1 and len(summary.results) == 3
    rows = read_rows(tmp_path / "out" / "boxes.csv")
    assert list(rows) == ["a.png", "sub/b.png", "sub/c.png"] and rows["a.png"] == first["a.png"]
