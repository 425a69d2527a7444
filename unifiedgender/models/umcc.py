"""UMCC: backbone -> global average pool -> dropout -> [features ++ modality flag (F1)] -> linear -> male logit.

Submodule names match the published UnifiedGenderNet checkpoints: `backbone.*`, `classifier.weight/bias`.
"""

from __future__ import annotations

import torch
from torch import nn

from unifiedgender.data.manifest import MODALITIES
from unifiedgender.models.base import HAND_FACE, GenderModel, hand_face_flag
from unifiedgender.models.registry import register_arch


@register_arch("umcc", uses_flag=True)
class UMCC(GenderModel):
    """Unified Modality-Conditioned Classifier."""

    def __init__(self, backbone: nn.Module, num_features: int, flag: bool = False, drop_rate: float = 0.2) -> None:
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(drop_rate)  # on the pooled features, as timm's drop_rate in the published model
        self.flag = flag
        self.modalities = HAND_FACE if flag else MODALITIES
        self.classifier = nn.Linear(num_features + (2 if flag else 0), 1)

    def forward(self, images: torch.Tensor, modality: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.dropout(self.backbone(images))
        if self.flag:
            features = torch.cat([features, hand_face_flag(modality).to(features.dtype)], dim=1)
        return {"logit": self.classifier(features).squeeze(1)}
