"""Published UnifiedGenderNet checkpoints (UMCC / MAG layouts) load strictly and predict the same P(male)."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from unifiedgender.errors import UserError
from unifiedgender.models import load_published_checkpoint

BACKBONE = "test_efficientnet.r160_in1k"  # a tiny timm EfficientNet standing in for tf_efficientnetv2_s.in1k


class ReferenceUMCC(nn.Module):
    """The published layout, written independently of unifiedgender."""

    def __init__(self, flag_on: bool) -> None:
        super().__init__()
        self.flag_on = flag_on
        self.backbone = timm.create_model(BACKBONE, pretrained=False, num_classes=0, global_pool="avg")
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
    with pytest.raises(UserError, match="give the backbone"):
        load_published_checkpoint(tmp_path / "x.pt", "umcc")
