"""simple_cnn: the fingerprint CNN of the Keras seed, for 96x96 grayscale images, trained from scratch.

Conv(32,3x3)+ReLU -> MaxPool(2) -> Conv(64,3x3)+ReLU -> MaxPool(2) -> Flatten -> Dense(128)+ReLU -> Dropout
-> Dense(1) (male logit). It has no pretrained weights; its data config is its own (pixels scaled to [0,1]).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from unifiedgender.errors import UserError
from unifiedgender.models.base import GenderModel
from unifiedgender.models.registry import register_arch

BACKBONE_NAME = "simple_cnn"


def simple_cnn_data_config(image_size: int = 96, in_chans: int = 1) -> dict[str, Any]:
    """Resize (squash) to image_size x image_size, no crop, scale pixels to [0,1] (mean 0, std 1), grayscale by default."""
    return {
        "input_size": [in_chans, image_size, image_size],
        "mean": [0.0] * in_chans,
        "std": [1.0] * in_chans,
        "interpolation": "bilinear",
        "crop_pct": 1.0,
        "crop_mode": "squash",
    }


class SimpleCNNFeatures(nn.Sequential):
    """The convolutional part; `num_features` is the flattened size."""

    def __init__(self, image_size: int, in_chans: int) -> None:
        if image_size < 10:
            raise UserError(f"simple_cnn: image_size {image_size} is too small; use at least 10 (96 as in the seed)")
        super().__init__(
            nn.Conv2d(in_chans, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        side = ((image_size - 2) // 2 - 2) // 2
        self.num_features = 64 * side * side


@register_arch("simple_cnn", builtin_backbone=BACKBONE_NAME)
class SimpleCNN(GenderModel):
    """The seed's fingerprint CNN."""

    def __init__(self, image_size: int = 96, in_chans: int = 1, hidden: int = 128, drop_rate: float = 0.5) -> None:
        super().__init__()
        self.image_size, self.in_chans = image_size, in_chans
        self.backbone = SimpleCNNFeatures(image_size, in_chans)
        self.head = nn.Sequential(
            nn.Linear(self.backbone.num_features, hidden), nn.ReLU(), nn.Dropout(drop_rate), nn.Linear(hidden, 1)
        )

    def builtin_data_config(self) -> dict[str, Any]:
        """This model's own preprocessing."""
        return simple_cnn_data_config(self.image_size, self.in_chans)

    def forward(self, images: torch.Tensor, modality: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"logit": self.head(self.backbone(images)).squeeze(1)}
