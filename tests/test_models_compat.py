"""Published UnifiedGenderNet checkpoints (UMCC / MAG layouts) load strictly and predict the same P(male)."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from PIL import Image
from predict_fixtures import one_torch_thread, run_ugn, write_images  # noqa: F401 (autouse fixture)
from torch import nn

from unifiedgender.errors import UserError
from unifiedgender.models import load_published_checkpoint
from unifiedgender.models.compat import load_published

BACKBONE = "test_efficientnet.r160_in1k"  # a tiny timm EfficientNet standing in for tf_efficientnetv2_s.in1k


class ReferenceUMCC(nn.Module):
    """The published layout, written independently of unifiedgender."""

    def __init__(self, flag_on: bool, backbone: str = BACKBONE) -> None:
        super().__init__()
        self.flag_on = flag_on
        self.backbone = timm.create_model(backbone, pretrained=False, num_classes=0, global_pool="avg")
        self.classifier = nn.Linear(self.backbone.num_features + (2 if flag_on else 0), 1)

    def forward(self, x: torch.Tensor, flag: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)
        if self.flag_on:
            feats = torch.cat([feats, flag], dim=1)
        return self.classifier(feats).squeeze(1)


class ReferenceMAG(nn.Module):
    def __init__(self, gating: str) -> None:
        super().__init__()
        self.gating = gating
        self.backbone = timm.create_model(BACKBONE, pretrained=False, num_classes=0, global_pool="avg")
        d = self.backbone.num_features
        self.gate = nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Linear(64, 2))
        self.hand_head, self.face_head = nn.Linear(d, 1), nn.Linear(d, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.backbone(x)
        w = torch.softmax(self.gate(f), 1)
        lh, lf = self.hand_head(f).squeeze(1), self.face_head(f).squeeze(1)
        return w[:, 0] * lh + w[:, 1] * lf if self.gating == "soft" else torch.where(w.argmax(1) == 0, lh, lf)


def _save(reference: nn.Module, path, wrapping: str) -> None:
    state = reference.state_dict()
    if wrapping == "bare":
        torch.save(state, path)
    elif wrapping == "state_dict":
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    else:
        torch.save({"model": state, "best_bacc": 0.91}, path)


@pytest.mark.parametrize("flag_on", [False, True])
@pytest.mark.parametrize("wrapping", ["bare", "state_dict", "model"])
def test_published_umcc_checkpoint_predicts_like_the_original(tmp_path, flag_on, wrapping):
    torch.manual_seed(0)
    reference = ReferenceUMCC(flag_on).eval()
    _save(reference, tmp_path / "umcc.pt", wrapping)
    model = load_published_checkpoint(tmp_path / "umcc.pt", "umcc", BACKBONE, flag=flag_on)
    assert not model.training
    images = torch.randn(3, 3, 64, 64)
    modality = torch.tensor([0, 1, 1])
    flags = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    with torch.no_grad():
        expected = torch.sigmoid(reference(images, flags))
        got = torch.sigmoid(model(images, modality)["logit"])
    assert torch.allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("gating", ["soft", "hard"])
def test_published_mag_checkpoint_predicts_like_the_original(tmp_path, gating):
    torch.manual_seed(0)
    reference = ReferenceMAG(gating).eval()
    _save(reference, tmp_path / "mag.pt", "state_dict")
    tag = f"{BACKBONE}_F0_Af_Lb_Z0_gating={gating}_seed42"
    model = load_published_checkpoint(tmp_path / "mag.pt", "mag", tag=tag)
    assert model.gating == gating
    images = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(images, torch.zeros(4, dtype=torch.long))["logit"], reference(images), atol=1e-6)


def test_a_flag_mismatch_names_the_classifier_shape(tmp_path):
    _save(ReferenceUMCC(True), tmp_path / "umcc_f1.pt", "bare")
    with pytest.raises(UserError, match=r"shape mismatches: classifier\.weight \(1, \d+\) vs \(1, \d+\); check the architecture, backbone and flag"):
        load_published_checkpoint(tmp_path / "umcc_f1.pt", "umcc", BACKBONE, flag=False)


def test_a_mag_file_loaded_as_umcc_names_missing_and_unexpected_keys(tmp_path):
    _save(ReferenceMAG("soft"), tmp_path / "mag.pt", "bare")
    with pytest.raises(UserError, match=r"missing keys: classifier\.weight, classifier\.bias; unexpected keys: gate\.0\.weight"):
        load_published_checkpoint(tmp_path / "mag.pt", "umcc", BACKBONE)


def test_unsupported_requests_are_refused(tmp_path):
    with pytest.raises(UserError, match="published checkpoints are umcc or mag, not 'classifier'"):
        load_published_checkpoint(tmp_path / "x.pt", "classifier", BACKBONE)
    _save(ReferenceUMCC(False), tmp_path / "umcc.pt", "bare")
    with pytest.raises(UserError, match=r"classifier takes \d+ inputs but backbone resnet10t.c3_in1k gives 512 features"):
        load_published(tmp_path / "umcc.pt", backbone="resnet10t.c3_in1k")
    torch.save({"backbone.w": torch.zeros(1), "head.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="keys are not those of a published UMCC or MAG checkpoint"):
        load_published(tmp_path / "other.pt")


def test_the_flag_is_read_from_the_classifier_width_not_the_tag(tmp_path):
    """The release calls its best UMCC 'F0' while its predict script builds UMCC with the flag on: the file decides."""
    on, off = tmp_path / f"{BACKBONE}_F0_Af_Lf_Z0.pt", tmp_path / f"{BACKBONE}_F1_Af_Lf_Z0.pt"
    _save(ReferenceUMCC(True), on, "state_dict")
    _save(ReferenceUMCC(False), off, "bare")
    model, tag, info = load_published(on)
    assert model.flag and str(tag) == f"{BACKBONE}_F1_Af_Lf_Z0" and info["release_tag"] == f"{BACKBONE}_F0_Af_Lf_Z0"
    assert info["flag_from"].endswith("+ 2") and info["arch"] == "umcc"
    model, tag, info = load_published(off)
    assert not model.flag and str(tag) == f"{BACKBONE}_F0_Af_Lf_Z0"


def test_release_file_names_give_the_release_tag_and_backbone(tmp_path):
    """1752668630.pt is not a tag: the sources table gives its tag, hence the backbone tf_efficientnetv2_s.in1k."""
    from unifiedgender.models.compat import _release_tag

    assert str(_release_tag(tmp_path / "1752668630.pt", None)) == "tf_efficientnetv2_s.in1k_F0_Af_Lf_Z0"
    mag = "tf_efficientnetv2_s.in1k_F0_Af_Lb_Z0_gating=soft_seed42.pt"
    assert _release_tag(tmp_path / mag, None).extra("gating") == "soft"
    assert _release_tag(tmp_path / "1752000000.pt", None) is None  # then the release's backbone is the default


# ---- the published files in every command: predict, evaluate, serve, export, convert --------------------

def release_predict(reference: nn.Module, path, modality: str) -> float:
    """The release's scripts/predict.py, re-implemented: Resize((224,224)) + ToTensor (no normalisation), RGB,
    flag hand=[1,0] / face=[0,1] for UMCC, sigmoid of the logit = P(male)."""
    from PIL import Image
    from torchvision import transforms as T

    x = T.Compose([T.Resize((224, 224)), T.ToTensor()])(Image.open(path).convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        if isinstance(reference, ReferenceUMCC):
            flag = torch.tensor([[1.0, 0.0] if modality == "hand" else [0.0, 1.0]])
            return float(torch.sigmoid(reference(x, flag)))
        return float(torch.sigmoid(reference(x)))


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A UMCC (flag on, though its tag says F0) and a hard-gated MAG in the published layout, random weights,
    heads scaled so P(male) spreads; plus a few images."""
    folder = tmp_path_factory.mktemp("published")
    images = write_images(folder / "images", 4, size=(80, 60))
    torch.manual_seed(1)
    umcc, mag = ReferenceUMCC(True).eval(), ReferenceMAG("hard").eval()
    from PIL import Image
    from torchvision import transforms as T

    batch = torch.stack([T.Compose([T.Resize((224, 224)), T.ToTensor()])(Image.open(p).convert("RGB")) for p in images])
    with torch.no_grad():  # rescale the heads so that P(male) spreads over these images (logits ~ N(0, 2))
        for reference, head in ((umcc, umcc.classifier), (mag, mag.hand_head), (mag, mag.face_head)):
            features = reference.backbone(batch)
            weight = head.weight[:, : features.shape[1]]
            logits = features @ weight.T
            weight.mul_(2.0 / (logits.std() + 1e-6))
            head.bias.copy_(-(features @ weight.T).mean(0))
        umcc.classifier.weight[0, -2:] = torch.tensor([1.5, -1.5])  # hand pushes towards male, face away
    files = {"umcc": folder / f"{BACKBONE}_F0_Af_Lf_Z0.pt", "mag": folder / f"{BACKBONE}_F0_Af_Lb_Z0_gating=hard_seed42.pt"}
    _save(umcc, files["umcc"], "state_dict")
    _save(mag, files["mag"], "model")
    return {"files": files, "refs": {"umcc": umcc, "mag": mag}, "images": images, "folder": folder}


def predicted(csv_path) -> dict[str, float]:
    import pandas as pd

    table = pd.read_csv(csv_path)
    assert (table["status"] == "ok").all(), table
    return {Path(p).name: float(v) for p, v in zip(table["path"], table["prob_male"])}


def expected(published, arch: str, modality: str) -> dict[str, float]:
    return {p.name: release_predict(published["refs"][arch], p, modality) for p in published["images"]}


@pytest.mark.parametrize("arch", ["umcc", "mag"])
def test_ugn_predict_takes_a_published_file_directly(published, tmp_path, capsys, arch):

    results = {}
    for modality in ("hand", "face"):
        out = tmp_path / f"{modality}.csv"
        code, text = run_ugn(["predict", *published["images"], "-c", published["files"][arch], "-m", modality,
                              "--engine", "torch", "-o", out], capsys)
        assert code == 0, text
        results[modality] = predicted(out)
        want = expected(published, arch, modality)
        assert results[modality] == pytest.approx(want, abs=1e-5)
        assert max(want.values()) - min(want.values()) > 0.05  # the images really differ in P(male)
    if arch == "umcc":  # the flag is on: the modality changes the answer
        assert results["hand"] != pytest.approx(results["face"], abs=1e-3)


@pytest.mark.slow
def test_ugn_evaluate_takes_a_published_file(published, tmp_path, monkeypatch, capsys):
    import json

    import pandas as pd

    from unifiedgender.data.manifest import write_manifest

    monkeypatch.chdir(tmp_path)
    rows = [{"path": str(p), "subject_id": f"s{i}", "gender": ("female", "male")[i % 2], "modality": "face",
             "split": "test"} for i, p in enumerate(published["images"])]
    write_manifest(pd.DataFrame(rows), tmp_path / "test.csv")
    code, text = run_ugn(["evaluate", published["files"]["umcc"], "--data", "test.csv", "--out", "rep", "--bootstrap",
                          "0", "--no-plots", "--device", "cpu"], capsys)
    assert code == 0, text
    assert predicted(tmp_path / "rep" / "predictions.csv") == pytest.approx(expected(published, "umcc", "face"), abs=1e-4)
    row = pd.read_csv(tmp_path / "metrics" / "final_metrics_with_full_configurations.csv").iloc[0]
    assert (row["arch"], row["tag"]) == ("umcc", f"{BACKBONE}_F1_Af_Lf_Z0")
    assert json.loads(row["configuration"])["published"]["flag_from"].endswith("+ 2")


def test_ugn_serve_takes_a_published_file(published):
    import httpx

    from unifiedgender.inference.predictor import Predictor
    from unifiedgender.serve import BackgroundServer, ServeLimits, create_app

    image = published["images"][0]
    predictor = Predictor.from_checkpoint(published["files"]["umcc"], device="cpu")
    with BackgroundServer(create_app(predictor, ServeLimits())) as running, httpx.Client(base_url=running.url, timeout=60) as http:
        for modality in ("hand", "face"):
            response = http.post("/api/predict", data={"modality": modality},
                                 files=[("files", (image.name, image.read_bytes(), "image/jpeg"))])
            assert response.status_code == 200, response.text
            got = response.json()["results"][0]["prob_male"]
            assert got == pytest.approx(release_predict(published["refs"]["umcc"], image, modality), abs=1e-4)


def test_ugn_export_takes_a_published_file(published, tmp_path, capsys):

    code, text = run_ugn(["export", published["files"]["mag"], "-o", tmp_path / "mag.onnx"], capsys)
    assert code == 0, text
    code, text = run_ugn(["predict", *published["images"], "-c", tmp_path / "mag.onnx", "-m", "hand", "-o",
                          tmp_path / "p.csv"], capsys)
    assert code == 0, text
    assert predicted(tmp_path / "p.csv") == pytest.approx(expected(published, "mag", "hand"), abs=1e-4)


def test_ugn_convert_records_preprocessing_and_tag(published, tmp_path, capsys):

    from unifiedgender.checkpoint import FORMAT, read_checkpoint
    from unifiedgender.models.compat import RELEASE_DATA_CONFIG

    out = tmp_path / "umcc.ugn.pt"
    code, text = run_ugn(["convert", published["files"]["umcc"], "-o", out], capsys)
    assert code == 0, text
    assert f"umcc on {BACKBONE}, flag on (classifier input width" in text and f"tag {BACKBONE}_F1_Af_Lf_Z0" in text
    info = read_checkpoint(out)
    assert info["format"] == FORMAT and info["flag"] is True and info["tag"] == f"{BACKBONE}_F1_Af_Lf_Z0"
    assert info["data_config"] == RELEASE_DATA_CONFIG
    assert info["config"]["published"]["preprocessing"].startswith("Resize((224, 224)) + ToTensor()")
    code, text = run_ugn(["predict", *published["images"], "-c", out, "-m", "hand", "--engine", "torch", "-o",
                          tmp_path / "p.csv"], capsys)
    assert code == 0, text
    assert predicted(tmp_path / "p.csv") == pytest.approx(expected(published, "umcc", "hand"), abs=1e-5)
    code, text = run_ugn(["convert", published["files"]["umcc"], "-o", out], capsys)
    assert code == 2 and "already exists; pass --overwrite" in text
    code, text = run_ugn(["convert", out, "-o", tmp_path / "again.pt"], capsys)
    assert code == 2 and "already a ugn checkpoint" in text
    code, text = run_ugn(["convert", published["files"]["mag"], "-o", tmp_path / "mag.pt"], capsys)
    assert code == 0 and "gating hard" in text and read_checkpoint(tmp_path / "mag.pt")["model_kwargs"] == {"gating": "hard"}


def test_a_file_that_is_neither_is_refused_in_one_line(tmp_path, capsys):

    torch.save({"state_dict": {"features.w": torch.zeros(2)}}, tmp_path / "other.pt")
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "photos" / "a.png")
    code, text = run_ugn(["predict", tmp_path / "photos", "-c", tmp_path / "other.pt"], capsys)
    assert code == 2 and "not a ugn checkpoint" in text and "nor a published UnifiedGenderNet UMCC/MAG state dict" in text


@pytest.mark.slow
def test_the_real_release_file_name_and_backbone(tmp_path):
    """checkpoints/1752668630.pt as published: EfficientNetV2-S (the release builds timm's 'tf_efficientnetv2_s'),
    flag on; nothing but the file is given."""
    from unifiedgender.inference.predictor import Predictor

    torch.manual_seed(0)
    reference = ReferenceUMCC(True, backbone="tf_efficientnetv2_s").eval()
    _save(reference, tmp_path / "1752668630.pt", "bare")
    images = write_images(tmp_path / "images", 2, size=(90, 70))
    predictor = Predictor.from_checkpoint(tmp_path / "1752668630.pt", device="cpu", engine="torch")
    assert predictor.tag == "tf_efficientnetv2_s.in1k_F1_Af_Lf_Z0"
    from PIL import Image

    for modality in ("hand", "face"):
        got = predictor.predict_images([Image.open(p) for p in images], modality)
        want = [release_predict(reference, p, modality) for p in images]
        assert got.tolist() == pytest.approx(want, abs=1e-5)
