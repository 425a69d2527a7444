"""Predictor API: streaming records, batching, TTA, thresholds, modality rules, predict_manifest."""

from __future__ import annotations

import itertools

import numpy as np
import torch
import pandas as pd
import pytest
from PIL import Image

from predict_fixtures import make_checkpoint, one_torch_thread, write_images  # noqa: F401 (autouse fixture)
from unifiedgender.errors import UserError
from unifiedgender.inference import Predictor, predict_manifest
from unifiedgender.inference.predictor import PREFETCH_BATCHES, RECORD_FIELDS


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "plain.pt")


@pytest.fixture(scope="module")
def flag_ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "flag.pt", flag=True)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("images"), 11)


def test_records_in_order_with_all_fields_and_consistent_values(ckpt, images):
    predictor = Predictor.from_checkpoint(ckpt, batch_size=4, workers=2)
    records = list(predictor.predict_paths(images, modality="face"))
    assert [r["path"] for r in records] == [str(p) for p in images]
    for r in records:
        assert tuple(r) == RECORD_FIELDS
        assert r["status"] == "ok" and r["modality"] == "face"
        assert 0.0 <= r["prob_male"] <= 1.0
        assert r["prob_female"] == pytest.approx(1.0 - r["prob_male"])
        assert r["pred"] == ("male" if r["prob_male"] >= 0.5 else "female")
        assert r["confidence"] == pytest.approx(max(r["prob_male"], r["prob_female"]))
    assert len({round(r["prob_male"], 4) for r in records}) > 3, "outputs should depend on the image"


def test_batch_size_and_workers_do_not_change_results(ckpt, images):
    one = [r["prob_male"] for r in Predictor.from_checkpoint(ckpt, batch_size=1, workers=1).predict_paths(images)]
    many = [r["prob_male"] for r in Predictor.from_checkpoint(ckpt, batch_size=5, workers=3).predict_paths(images)]
    np.testing.assert_allclose(one, many, atol=1e-5)


def test_predict_images_matches_predict_paths(ckpt, images):
    predictor = Predictor.from_checkpoint(ckpt, batch_size=3)
    from_paths = [r["prob_male"] for r in predictor.predict_paths(images[:5])]
    pil = [Image.open(p) for p in images[:5]]
    np.testing.assert_allclose(predictor.predict_images(pil), from_paths, atol=1e-6)


def test_tta_is_the_mean_over_the_mirror_image(ckpt, images):
    plain = Predictor.from_checkpoint(ckpt)
    tta = Predictor.from_checkpoint(ckpt, tta=True)
    # square images: the centre crop of the mirror image is then exactly the mirror of the centre crop
    originals = [Image.open(p).convert("RGB").resize((60, 60)) for p in images[:4]]
    mirrored = [img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for img in originals]
    expected = (plain.predict_images(originals) + plain.predict_images(mirrored)) / 2
    np.testing.assert_allclose(tta.predict_images(originals), expected, atol=1e-5)
    assert not np.allclose(plain.predict_images(originals), expected, atol=1e-4)


def test_threshold_moves_the_label(ckpt, images):
    probs = [r["prob_male"] for r in Predictor.from_checkpoint(ckpt).predict_paths(images)]
    cut = float(np.median(probs))
    records = list(Predictor.from_checkpoint(ckpt, threshold=cut).predict_paths(images))
    assert [r["pred"] for r in records] == ["male" if p >= cut else "female" for p in probs]
    with pytest.raises(UserError, match=r"--threshold 1.5: must be in \(0, 1\]"):
        Predictor.from_checkpoint(ckpt, threshold=1.5)


def test_streaming_consumes_input_lazily(ckpt, images):
    """Only a bounded window of paths is read ahead of the records already produced (constant memory)."""
    consumed = []

    def endless():
        for path in itertools.cycle(images):
            consumed.append(path)
            yield path

    batch = 4
    stream = Predictor.from_checkpoint(ckpt, batch_size=batch, workers=2).predict_paths(endless())
    first = list(itertools.islice(stream, 2 * batch))
    assert len(first) == 2 * batch
    assert len(consumed) <= (PREFETCH_BATCHES + 3) * batch
    stream.close()


def test_unreadable_file_gets_a_status_and_the_rest_is_predicted(ckpt, images, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"definitely not a jpeg")
    paths = [images[0], broken, images[1], tmp_path / "missing.png"]
    records = list(Predictor.from_checkpoint(ckpt, batch_size=2).predict_paths(paths))
    assert [r["status"] for r in records][0::2] == ["ok", "ok"]
    assert records[1]["status"] == "not an image (unrecognised format)"
    assert records[3]["status"].startswith("cannot open")
    assert records[1]["prob_male"] is None and records[1]["pred"] == ""


def test_conditioned_model_needs_a_modality(flag_ckpt, images):
    predictor = Predictor.from_checkpoint(flag_ckpt)
    assert predictor.modalities == ("hand", "face")
    with pytest.raises(UserError, match="conditioned on the modality; give --modality"):
        list(predictor.predict_paths(images[:2]))
    with pytest.raises(UserError, match="takes hand or face images, not 'fingerprint'"):
        list(predictor.predict_paths(images[:2], modality="fingerprint"))
    with pytest.raises(UserError, match="modality of input 2"):
        list(predictor.predict_paths(images[:2], modality=["hand", None]))
    hand = predictor.predict_images([Image.open(images[0])], "hand")
    face = predictor.predict_images([Image.open(images[0])], "face")
    assert hand[0] != pytest.approx(face[0], abs=1e-6), "the flag must change the prediction"


def test_unknown_modality_is_an_error_never_face(ckpt, images):
    predictor = Predictor.from_checkpoint(ckpt)
    with pytest.raises(UserError, match=r"unknown modality .palm. \(--modality\); use one of hand, face"):
        list(predictor.predict_paths(images[:1], modality="palm"))
    with pytest.raises(UserError, match="unknown modality 'Face'"):
        predictor.predict_images([Image.open(images[0])], "Face")


def test_missing_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="checkpoint not found: .*nope.pt"):
        Predictor.from_checkpoint(tmp_path / "nope.pt")


def test_predict_manifest_keeps_columns_and_adds_predictions(ckpt, images, tmp_path):
    broken = tmp_path / "zero.jpg"
    broken.write_bytes(b"")
    paths = [str(p) for p in images[:4]] + [str(broken)]
    manifest = pd.DataFrame({
        "path": paths, "subject_id": ["a", "a", "b", "c", "c"], "gender": ["male", "female", "male", "female", "male"],
        "modality": ["face", "hand", "face", "face", "hand"], "age": [30, 41, 22, 50, 19], "race": list("wbwab"),
        "split": ["test"] * 5,
    })
    table = predict_manifest(ckpt, manifest, batch_size=2)
    assert list(table.columns) == [*manifest.columns, "prob_male", "pred", "status"]
    pd.testing.assert_frame_equal(table[manifest.columns], manifest)
    assert list(table["status"]) == ["ok"] * 4 + ["empty file (0 bytes)"]
    assert np.isnan(table["prob_male"].iloc[4]) and table["pred"].iloc[4] == ""
    expected = [r["prob_male"] for r in Predictor.from_checkpoint(ckpt).predict_paths(paths[:4])]
    np.testing.assert_allclose(table["prob_male"].iloc[:4], expected, atol=1e-6)
    assert set(table["pred"].iloc[:4]) <= {"male", "female"}


class _NoOnnxModel(torch.nn.Module):
    """A model with an operator the ONNX exporter does not know (Bessel J0)."""

    data_config = {"input_size": (3, 16, 16), "mean": (0.5,) * 3, "std": (0.5,) * 3,
                   "interpolation": "bilinear", "crop_pct": 1.0}

    def forward(self, images, modality):
        return {"logit": torch.special.bessel_j0(images.mean(dim=(1, 2, 3)) * 3)}


def test_engines_agree_and_auto_falls_back_to_torch(ckpt, images):
    torch_engine = Predictor.from_checkpoint(ckpt, engine="torch")
    ort_engine = Predictor.from_checkpoint(ckpt, engine="onnxruntime")
    assert (torch_engine.engine, ort_engine.engine, Predictor.from_checkpoint(ckpt).engine) == ("torch", "onnxruntime", "onnxruntime")
    np.testing.assert_allclose([r["prob_male"] for r in torch_engine.predict_paths(images)],
                               [r["prob_male"] for r in ort_engine.predict_paths(images)], atol=1e-4)
    assert Predictor.from_model(_NoOnnxModel()).engine == "torch"
    with pytest.raises(Exception, match="bessel"):
        Predictor.from_model(_NoOnnxModel(), engine="onnxruntime")
    with pytest.raises(UserError, match="unknown engine 'tensorrt'; use one of auto, torch, onnxruntime"):
        Predictor.from_checkpoint(ckpt, engine="tensorrt")


def test_gpu_input_path_uint8_batches_normalised_on_the_device_give_the_same_predictions(ckpt, images):
    """The GPU path (uint8 transfer, normalisation and mirror TTA on the device), run on the CPU, matches the
    float preprocessing in the decoding threads."""
    from unifiedgender.checkpoint import load_checkpoint
    from unifiedgender.inference.backends import TorchBackend

    for tta in (False, True):
        float_path = Predictor.from_checkpoint(ckpt, engine="torch", device="cpu", batch_size=4, tta=tta)
        model, info = load_checkpoint(ckpt)
        backend = TorchBackend(model, "cpu")
        backend.takes_uint8 = True  # as on a GPU
        uint8_path = Predictor(backend, info["data_config"], batch_size=4, tta=tta)
        assert uint8_path.uint8 and not float_path.uint8
        assert uint8_path._load(str(images[0])).dtype == torch.uint8
        want = [r["prob_male"] for r in float_path.predict_paths(images, modality="face")]
        got = [r["prob_male"] for r in uint8_path.predict_paths(images, modality="face")]
        np.testing.assert_allclose(got, want, atol=1e-5)
