"""classifier: one backbone + a linear head (the finger-fluting ResNet-18 / EfficientNet-V2-S setup)."""

from __future__ import annotations

import torch
from torch import nn

from unifiedgender.models.base import GenderModel
from unifiedgender.models.registry import register_arch


@register_arch("classifier")
class Classifier(GenderModel):
    """Backbone -> (dropout) -> linear -> male logit; modality is ignored."""

    def __init__(self, backbone: nn.Module, num_features: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(num_features, 1))

    def forward(self, images: torch.Tensor, modality: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"logit": self.head(self.backbone(images)).squeeze(1)}
