"""MAG: backbone features -> gate MLP (d -> 64 -> ReLU -> 2) weighting a hand head and a face head.

`gating="soft"`: logit = softmax(gate)[hand] * hand_logit + softmax(gate)[face] * face_logit.
`gating="hard"`: the logit of the argmax head. `gate_logits` [B,2] (hand, face) are returned so training can
add `modality_loss_weight * cross_entropy(gate_logits, modality)` (0.3 by default) to the gender loss.
Submodule names match the published checkpoints: backbone.*, gate.0.*, gate.2.*, hand_head.*, face_head.*.
"""

from __future__ import annotations

import torch
from torch import nn

from unifiedgender.errors import UserError
from unifiedgender.models.base import HAND_FACE, GenderModel
from unifiedgender.models.registry import register_arch

GATINGS = ("soft", "hard")
DEFAULT_MODALITY_LOSS_WEIGHT = 0.3


@register_arch("mag")
class MAG(GenderModel):
    """Modality-Aware Gated network (hand and face)."""

    modalities = HAND_FACE

    def __init__(
        self,
        backbone: nn.Module,
        num_features: int,
        gating: str = "soft",
        gate_hidden: int = 64,
        modality_loss_weight: float = DEFAULT_MODALITY_LOSS_WEIGHT,
    ) -> None:
        super().__init__()
        if gating not in GATINGS:
            raise UserError(f"mag: unknown gating '{gating}'; use one of {', '.join(GATINGS)}")
        if modality_loss_weight < 0:
            raise UserError(f"mag: modality_loss_weight {modality_loss_weight} must be >= 0")
        self.backbone = backbone
        self.gating = gating
        self.modality_loss_weight = float(modality_loss_weight)
        self.gate = nn.Sequential(nn.Linear(num_features, gate_hidden), nn.ReLU(), nn.Linear(gate_hidden, 2))
        self.hand_head = nn.Linear(num_features, 1)
        self.face_head = nn.Linear(num_features, 1)

    def forward(self, images: torch.Tensor, modality: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        features = self.backbone(images)
        gate_logits = self.gate(features)
        heads = torch.cat([self.hand_head(features), self.face_head(features)], dim=1)  # [B,2] (hand, face)
        if self.gating == "soft":
            logit = (torch.softmax(gate_logits, dim=1) * heads).sum(dim=1)
        else:
            logit = heads.gather(1, gate_logits.argmax(dim=1, keepdim=True)).squeeze(1)
        return {"logit": logit, "gate_logits": gate_logits}
