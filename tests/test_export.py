"""`ugn export`: ONNX (onnxruntime) and TorchScript match PyTorch within 1e-4 on real preprocessed images,
with a dynamic batch axis and the preprocessing in the metadata; `ugn predict` runs the ONNX model."""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from predict_fixtures import make_checkpoint, one_torch_thread, run_ugn, write_images  # noqa: F401 (autouse fixture)
from unifiedgender.checkpoint import load_checkpoint
from unifiedgender.data.images import load_image
from unifiedgender.errors import UserError
from unifiedgender.inference import Predictor
from unifiedgender.inference.export import export_checkpoint
from unifiedgender.inference.onnx_io import read_onnx_metadata


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("images"), 5)


def reference(ckpt, images, modality):
    """Preprocessed batch (the predictor's own transform) and PyTorch logits for it."""
    model, info = load_checkpoint(ckpt)
    predictor = Predictor.from_checkpoint(ckpt)
    batch = torch.stack([predictor.transform(load_image(p)) for p in images])
    index = torch.full((len(images),), modality, dtype=torch.long)
    with torch.inference_mode():
        logits = model(batch, index)["logit"].numpy()
    return batch, index, logits, info


@pytest.mark.parametrize(("arch", "flag"), [pytest.param("umcc", False, marks=pytest.mark.slow), ("umcc", True), ("mag", False)])
def test_onnx_matches_pytorch_at_any_batch_size(tmp_path, images, arch, flag):
    ckpt = make_checkpoint(tmp_path / "m.pt", arch=arch, flag=flag)
    result = export_checkpoint(ckpt, "onnx")
    assert result["output"] == tmp_path / "m.onnx" and result["max_abs_diff"] < 1e-4
    session = ort.InferenceSession(str(result["output"]), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image", "modality"]
    for modality in (0, 1):
        batch, index, want, info = reference(ckpt, images, modality)
        for size in (1, len(images)):
            (got,) = session.run(["logit"], {"image": batch[:size].numpy(), "modality": index[:size].numpy()})
            np.testing.assert_allclose(got, want[:size], atol=1e-4)
    meta = read_onnx_metadata(result["output"])
    assert meta["data_config"]["input_size"] == list(info["data_config"]["input_size"])
    assert meta["tag"] == info["tag"] and meta["arch"] == arch
    assert tuple(meta["modalities"]) == (("hand", "face") if flag or arch == "mag" else
                                         ("hand", "face", "fingerprint", "fluting_virtual", "fluting_tactile"))


def test_flag_model_output_depends_on_the_modality_input(tmp_path, images):
    ckpt = make_checkpoint(tmp_path / "f.pt", flag=True)
    path = export_checkpoint(ckpt, "onnx")["output"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch, _, _, _ = reference(ckpt, images, 0)
    hand, face = (session.run(["logit"], {"image": batch.numpy(), "modality": np.full(len(images), m)})[0] for m in (0, 1))
    assert not np.allclose(hand, face, atol=1e-3)


def test_torchscript_matches_pytorch(tmp_path, images):
    ckpt = make_checkpoint(tmp_path / "m.pt", flag=True)
    result = export_checkpoint(ckpt, "torchscript", tmp_path / "out" / "model.ts")
    assert result["output"].is_file() and result["max_abs_diff"] < 1e-4
    extra = {"ugn.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(result["output"]), _extra_files=extra)
    assert json.loads(extra["ugn.json"])["data_config"]["input_size"] == [3, 48, 48]
    batch, index, want, _ = reference(ckpt, images, 1)
    with torch.no_grad():
        np.testing.assert_allclose(module(batch, index).numpy(), want, atol=1e-4)
        np.testing.assert_allclose(module(batch[:1], index[:1]).numpy(), want[:1], atol=1e-4)


def test_ugn_predict_accepts_the_onnx_model(tmp_path, images, capsys):
    ckpt = make_checkpoint(tmp_path / "m.pt", flag=True)
    code, text = run_ugn(["export", ckpt, "--format", "onnx", "-o", tmp_path / "m.onnx"], capsys)
    assert code == 0 and "max |logit - PyTorch|" in text, text
    outputs = {}
    for model in ("m.pt", "m.onnx"):
        out = tmp_path / f"{model}.csv"
        code, text = run_ugn(["predict", *images, "-c", tmp_path / model, "-m", "face", "-b", "2", "-o", out], capsys)
        assert code == 0, text
        outputs[model] = [float(r["prob_male"]) for r in csv.DictReader(out.open())]
    np.testing.assert_allclose(outputs["m.onnx"], outputs["m.pt"], atol=1e-4)
    code, text = run_ugn(["predict", *images, "-c", tmp_path / "m.onnx"], capsys)
    assert code == 2 and "conditioned on the modality" in text


def test_export_errors(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "m.pt")
    (tmp_path / "m.onnx").write_text("keep me")
    code, text = run_ugn(["export", ckpt], capsys)
    assert code == 2 and "m.onnx already exists; pass --overwrite" in text
    assert (tmp_path / "m.onnx").read_text() == "keep me"
    code, text = run_ugn(["export", ckpt, "--format", "tflite"], capsys)
    assert code == 2 and "unknown export format 'tflite'; use one of onnx, torchscript" in text
    code, text = run_ugn(["export", tmp_path / "none.pt"], capsys)
    assert code == 2 and "checkpoint not found" in text
    with pytest.raises(UserError, match="not a readable ONNX model"):
        read_onnx_metadata(tmp_path / "m.onnx")
    plain = onnx.helper.make_model(onnx.helper.make_graph([], "g", [], []))
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    with pytest.raises(UserError, match="ONNX model without ugn metadata; export it with `ugn export"):
        Predictor.from_checkpoint(tmp_path / "plain.onnx")


def test_onnx_on_a_gpu_without_onnxruntime_gpu_is_refused_not_run_on_the_cpu(tmp_path):
    """The `export` extra installs CPU-only onnxruntime: --device cuda must say so instead of silently using the CPU."""
    from unifiedgender.errors import UserError
    from unifiedgender.inference.backends import OnnxBackend
    from unifiedgender.inference.onnx_io import onnx_has_cuda

    if onnx_has_cuda():
        pytest.skip("this onnxruntime has a CUDA provider")
    path = export_checkpoint(make_checkpoint(tmp_path / "m.pt"), "onnx")["output"]
    with pytest.raises(UserError, match="no CUDA provider .* onnxruntime-gpu"):
        OnnxBackend.load(path, torch.device("cuda", 0))
