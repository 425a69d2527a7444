"""ridge_classifier: backbone features + a ridge-spectrum branch of the same image, one linear head trained jointly.

Ridge frequency (ridges per unit length, on average higher for women) is what fingerprint studies find carries
sex; an ImageNet CNN has to learn it from a few thousand prints. The branch measures it directly: the image in
gray, resized to `SPECTRUM_SIZE` px, Hann-windowed, its 2-D power spectrum (a DFT as fixed matrix products, so it
exports to ONNX), summed over rings of equal spatial frequency, normalised to a distribution (contrast does not
count) and logged, plus its centroid. Those `SPECTRUM_FEATURES` numbers, standardised by a batch norm, sit beside
the pooled CNN features in front of the head. It is computed from the image alone, so predict, serve and export
need nothing but the image. The hand-made ridge features of `ugn data features` (ridge/valley widths,
orientation) stay with `ugn fuse`: they come from OpenCV, not from tensors.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from unifiedgender.models.base import GenderModel
from unifiedgender.models.registry import register_arch
from unifiedgender.runtime import full_precision

SPECTRUM_SIZE = 64  # px: prints of 96-160 px put their ridge period at 5-7 px here, well below Nyquist
SPECTRUM_RINGS = SPECTRUM_SIZE // 2  # frequency rings 1..32 cycles per window (the DC term is left out)
SPECTRUM_FEATURES = SPECTRUM_RINGS + 1  # log ring powers + the spectral centroid


class RidgeSpectrum(nn.Module):
    """[B,C,H,W] images -> [B, SPECTRUM_FEATURES]: log radial power spectrum of the gray image and its centroid."""

    def __init__(self, size: int = SPECTRUM_SIZE) -> None:
        super().__init__()
        self.size = size
        grid = torch.arange(size, dtype=torch.float64)
        angle = 2 * math.pi * torch.outer(grid, grid) / size
        hann = torch.hann_window(size, periodic=False, dtype=torch.float64)
        frequency = torch.minimum(grid, size - grid)  # |signed frequency| of each DFT index
        radius = torch.sqrt(frequency[:, None] ** 2 + frequency[None, :] ** 2).round().long().flatten()
        rings = torch.zeros(size * size, SPECTRUM_RINGS, dtype=torch.float64)
        inside = (radius >= 1) & (radius <= SPECTRUM_RINGS)
        rings[inside.nonzero().squeeze(1), radius[inside] - 1] = 1.0
        self.register_buffer("cos", torch.cos(angle).float(), persistent=False)
        self.register_buffer("sin", torch.sin(angle).float(), persistent=False)
        self.register_buffer("window", torch.outer(hann, hann).float(), persistent=False)
        self.register_buffer("rings", rings.float(), persistent=False)
        self.register_buffer("ring_radius", torch.arange(1, SPECTRUM_RINGS + 1, dtype=torch.float32) / SPECTRUM_RINGS,
                             persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with full_precision(images.device.type):  # a power spectrum needs float32
            return self._spectrum(images)

    def _spectrum(self, images: torch.Tensor) -> torch.Tensor:
        gray = F.interpolate(images.float().mean(1, keepdim=True), size=(self.size, self.size), mode="bilinear",
                             align_corners=False)[:, 0]
        gray = (gray - gray.mean((1, 2), keepdim=True)) * self.window
        by_cos, by_sin = self.cos @ gray, self.sin @ gray  # the DFT matrices are symmetric: F = (C - iS) X (C - iS)
        real = by_cos @ self.cos - by_sin @ self.sin
        imaginary = by_cos @ self.sin + by_sin @ self.cos
        power = (real.square() + imaginary.square()).flatten(1) @ self.rings
        share = power / power.sum(1, keepdim=True).clamp_min(1e-12)
        centroid = (share * self.ring_radius).sum(1, keepdim=True)
        return torch.cat([torch.log(share + 1e-6), centroid], dim=1)


@register_arch("ridge_classifier", default_backbone="tv-mobilenet_v2.imagenet1k_v1")
class RidgeClassifier(GenderModel):
    """[backbone features, batch-normed ridge spectrum] -> (dropout) -> linear -> male logit; modality is ignored."""

    def __init__(self, backbone: nn.Module, num_features: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.spectrum = RidgeSpectrum()
        self.spectrum_norm = nn.BatchNorm1d(SPECTRUM_FEATURES)
        self.head = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(num_features + SPECTRUM_FEATURES, 1))

    def forward(self, images: torch.Tensor, modality: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        ridges = self.spectrum_norm(self.spectrum(images))
        return {"logit": self.head(torch.cat([self.backbone(images), ridges.to(images.dtype)], dim=1)).squeeze(1)}
