"""`ugn bench predict`: both paths run on the same images and agree; the table reports rates and ratios."""

from __future__ import annotations

import re

import pytest

from predict_fixtures import make_checkpoint, one_torch_thread, run_ugn, write_images  # noqa: F401 (autouse fixture)
from unifiedgender.errors import UserError
from unifiedgender.inference.bench import bench_images, run_predict_benchmark


def test_benchmark_compares_both_engines_with_the_baseline(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.pt", flag=True)
    paths = [str(p) for p in write_images(tmp_path / "images", 12)]
    result = run_predict_benchmark(paths, ckpt, batch_size=4, workers=2, rounds=1)
    assert result.n_images == 12 and result.rounds == 1
    assert set(result.engines_images_per_s) == {"torch", "onnxruntime"}
    assert result.baseline_images_per_s > 0 and all(v > 0 for v in result.engines_images_per_s.values())
    assert result.max_abs_diff < 1e-4, "the predictor must compute what the one-by-one loop computes"
    assert result.speedup("torch") == pytest.approx(result.engines_images_per_s["torch"] / result.baseline_images_per_s)
    ceiling = result.ceiling_images_per_s
    assert set(ceiling) == {"torch", "onnxruntime"} and all(v > 0 for v in ceiling.values())
    assert result.as_dict()["of_ceiling"]["torch"] == pytest.approx(result.engines_images_per_s["torch"] / ceiling["torch"])
    with pytest.raises(UserError, match="takes hand or face images, not 'fingerprint'"):
        run_predict_benchmark(paths, ckpt, modality="fingerprint", rounds=1)


def test_bench_images_from_folder_or_synthetic(tmp_path):
    write_images(tmp_path / "f" / "sub", 3)
    assert len(bench_images(tmp_path / "f", 2)) == 2
    synthetic = bench_images(None, 3)
    assert len(synthetic) == 3 and all(p.endswith(".jpg") for p in synthetic)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no image files found"):
        bench_images(tmp_path / "empty", 2)
    with pytest.raises(UserError, match="not a folder"):
        bench_images(tmp_path / "missing", 2)


def test_ugn_bench_predict_command(tmp_path, capsys):
    write_images(tmp_path / "images", 6)
    code, text = run_ugn(["bench", "predict", "--folder", tmp_path / "images", "-n", "6", "--backbone", "mobilenetv2_050",
                          "-b", "3", "--rounds", "1", "--threads", "1"], capsys)
    assert code == 0, text
    assert "baseline" in text and "engine onnxruntime" in text and "engine torch" in text
    assert len(re.findall(r"\d+\.\d+x", text)) == 3 and text.count("ceiling: engine") == 2
