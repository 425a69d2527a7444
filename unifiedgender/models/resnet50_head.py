"""resnet50_head: backbone (ResNet-50 by default) -> GAP -> Dropout -> Dense(128) -> Dropout -> Dense(64) -> Dense(1).

As in the Keras seed, only the last 20 layers of the backbone train by default (freezing code Z3; a "layer"
is a module that owns parameters directly, counted in registration order; for ResNet-50 the last 20 are
exactly stage 4, `layer4`). The training run's Z code replaces this default.
"""

from __future__ import annotations

import torch
from torch import nn

from unifiedgender.models.base import GenderModel
from unifiedgender.models.registry import register_arch


@register_arch("resnet50_head", default_backbone="resnet50.tv_in1k")
class ResNet50Head(GenderModel):
    """Backbone with the seed's dense head; ReLU after each hidden dense layer."""

    default_freeze = "Z3"

    def __init__(self, backbone: nn.Module, num_features: int, drop_rate: float = 0.5) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(
            nn.Dropout(drop_rate),
            nn.Linear(num_features, 128),
            nn.ReLU(),
            nn.Dropout(drop_rate),
            nn.Linear(128, 64),
            nn.ReLU(),
            nn.Linear(64, 1),
        )

    def forward(self, images: torch.Tensor, modality: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"logit": self.head(self.backbone(images)).squeeze(1)}
