"""multitask: a shared backbone with a gender head and an age head (joint, weighted loss outside the model).

`age_mode="buckets"`: age_logits [B, K] over the Adience buckets (K=8). `age_mode="regression"`: age_logits
[B, 1] is the predicted age in years. `age_loss_weight` (default 1.0) is what training multiplies the age
loss by before adding it to the gender loss.
"""

from __future__ import annotations

import torch
from torch import nn

from unifiedgender.data.ages import ADIENCE_AGE_BUCKETS
from unifiedgender.errors import UserError
from unifiedgender.models.base import GenderModel
from unifiedgender.models.registry import register_arch

AGE_MODES = ("buckets", "regression")


@register_arch("multitask")
class MultiTask(GenderModel):
    """Shared backbone; `logit` (male) and `age_logits`."""

    def __init__(
        self,
        backbone: nn.Module,
        num_features: int,
        age_mode: str = "buckets",
        num_age_classes: int = len(ADIENCE_AGE_BUCKETS),
        age_loss_weight: float = 1.0,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if age_mode not in AGE_MODES:
            raise UserError(f"multitask: unknown age_mode '{age_mode}'; use one of {', '.join(AGE_MODES)}")
        if age_mode == "buckets" and num_age_classes < 2:
            raise UserError(f"multitask: num_age_classes {num_age_classes} must be >= 2 for age buckets")
        self.backbone = backbone
        self.age_mode = age_mode
        self.age_loss_weight = float(age_loss_weight)
        self.dropout = nn.Dropout(drop_rate)
        self.gender_head = nn.Linear(num_features, 1)
        self.age_head = nn.Linear(num_features, num_age_classes if age_mode == "buckets" else 1)

    def forward(self, images: torch.Tensor, modality: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        features = self.dropout(self.backbone(images))
        return {"logit": self.gender_head(features).squeeze(1), "age_logits": self.age_head(features)}
