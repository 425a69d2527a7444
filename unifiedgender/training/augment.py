"""Augmentation presets applied on the device, in batches, to uint8 images from the decoded cache.

The tag's A code picks the preset (unifiedgender.tags.AUGMENT_CODES):
  An none         resize (done once by the cache) + normalise
  Af full         random resized crop (scale 0.5-1, ratio 3/4-4/3), horizontal flip, colour jitter
                  (brightness/contrast/saturation 0.2), rotation +-10 degrees
  Ar randaugment  RandAugment (torchvision's ops, 2 per image, magnitude 9), then random resized crop + flip
  Am mixup        the full preset, then MixUp (alpha 0.2) or CutMix (alpha 1.0), half the batches each
Crop, flip and rotation of a whole batch are one `affine_grid` + `grid_sample` with per-image parameters;
colour jitter is per-image arithmetic. Colour jitter is skipped for modalities without colour
(fingerprints). RandAugment draws an op and a sign per image and slot, then applies each distinct
(op, signed magnitude) once to the sub-batch of images that drew it: at most ~30 batched calls per slot,
whatever the batch size, instead of one small call per image. All random parameters come from one seeded
NumPy generator whose state is checkpointed (and which differs per DDP rank), so a resumed run repeats the
same augmentations; they are drawn on the CPU and moved to the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from unifiedgender.data.manifest import MODALITIES
from unifiedgender.errors import UserError
from unifiedgender.tags import AUGMENT_PRESETS

NO_COLOUR_JITTER = ("fingerprint",)  # grayscale scans: brightness/contrast/saturation jitter only adds noise


@dataclass
class AugmentSettings:
    """Strengths of the presets (documented in docs/training.md)."""

    scale: tuple[float, float] = (0.5, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    rotation: float = 10.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    randaugment_ops: int = 2
    randaugment_magnitude: int = 9
    mixup_alpha: float = 0.2
    cutmix_alpha: float = 1.0


class Normalize:
    """uint8 [B,C,H,W] on the device -> float, scaled to [0,1] and standardised with the backbone's mean/std."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], channels: int, device: torch.device,
                 memory_format: torch.memory_format = torch.contiguous_format) -> None:
        mean, std = _per_channel(mean, channels), _per_channel(std, channels)
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.memory_format = memory_format

    def to_unit(self, images: torch.Tensor) -> torch.Tensor:
        return images.float().div_(255.0)

    def standardise(self, unit: torch.Tensor) -> torch.Tensor:
        """In place (`unit` is a fresh tensor of the pipeline): one less full-size float copy per batch."""
        return unit.sub_(self.mean).div_(self.std).contiguous(memory_format=self.memory_format)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.standardise(self.to_unit(images))


def _per_channel(values: tuple[float, ...], channels: int) -> list[float]:
    values = [float(v) for v in values]
    if len(values) == channels:
        return values
    if channels == 1:
        return [sum(values) / len(values)]
    if len(values) == 1:
        return values * channels
    raise UserError(f"mean/std has {len(values)} values for {channels}-channel images; fix the data config")


class DeviceAugment:
    """Batched training augmentation: __call__(uint8 images, modality) -> (normalised floats, perm, lam)."""

    def __init__(self, preset: str, normalize: Normalize, seed: int, settings: AugmentSettings | None = None) -> None:
        if preset not in AUGMENT_PRESETS:
            raise UserError(f"unknown augmentation preset '{preset}'; use one of {', '.join(AUGMENT_PRESETS)}")
        self.preset = preset
        self.normalize = normalize
        self.settings = settings or AugmentSettings()
        self.rng = np.random.default_rng(seed)
        self._no_jitter = [MODALITIES.index(m) for m in NO_COLOUR_JITTER]
        self._randaugment = None
        if preset == "randaugment":
            from torchvision.transforms import v2

            self._randaugment = v2.RandAugment(self.settings.randaugment_ops, self.settings.randaugment_magnitude)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]

    def __call__(self, images: torch.Tensor, modality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, float]:
        if self.preset == "none":
            return self.normalize(images), None, 1.0
        if self._randaugment is not None:
            images = self.apply_randaugment(images, self.plan_randaugment(images.shape[0], *images.shape[-2:]))
        unit = self.normalize.to_unit(images)
        if self._randaugment is not None:  # RandAugment brings its own rotation and colour operations
            unit = self.geometry(unit, rotation=0.0)
        else:
            unit = self.colour_jitter(self.geometry(unit), modality)
        perm, lam = None, 1.0
        if self.preset == "mixup":
            unit, perm, lam = self.mix(unit)
        return self.normalize.standardise(unit), perm, lam

    def plan_randaugment(self, n: int, height: int, width: int) -> list[list[tuple[str, float]]]:
        """For each of the `randaugment_ops` slots, each image's (op name, signed magnitude), as torchvision's
        RandAugment draws them (uniform op, magnitude bin `randaugment_magnitude`, random sign where signed)."""
        space = self._randaugment._AUGMENTATION_SPACE
        names = list(space)
        plan = []
        for _ in range(self.settings.randaugment_ops):
            ops, flips = self.rng.integers(len(names), size=n), self.rng.random(n) <= 0.5
            slot = []
            for op, flip in zip(ops, flips):
                magnitudes_fn, signed = space[names[op]]
                magnitudes = magnitudes_fn(self._randaugment.num_magnitude_bins, height, width)
                magnitude = 0.0 if magnitudes is None else float(magnitudes[self._randaugment.magnitude])
                slot.append((names[op], -magnitude if signed and flip else magnitude))
            plan.append(slot)
        return plan

    def apply_randaugment(self, images: torch.Tensor, plan: list[list[tuple[str, float]]]) -> torch.Tensor:
        """uint8 images -> the planned ops, each distinct (op, magnitude) applied once to its sub-batch."""
        ra = self._randaugment
        out = images.clone()
        for slot in plan:
            groups: dict[tuple[str, float], list[int]] = {}
            for i, op in enumerate(slot):
                groups.setdefault(op, []).append(i)
            for (name, magnitude), members in groups.items():
                if name == "Identity":
                    continue
                index = torch.tensor(members, dtype=torch.long).to(out.device, non_blocking=True)
                out[index] = ra._apply_image_or_video_transform(out[index], name, magnitude,
                                                                interpolation=ra.interpolation, fill=ra._fill)
        return out

    def _uniform(self, low: float, high: float, n: int, device: torch.device) -> torch.Tensor:
        return torch.from_numpy(self.rng.uniform(low, high, n).astype(np.float32)).to(device, non_blocking=True)

    def geometry(self, unit: torch.Tensor, rotation: float | None = None) -> torch.Tensor:
        """Random resized crop + horizontal flip + rotation as one batched affine resampling."""
        s, n, dev = self.settings, unit.shape[0], unit.device
        rotation = s.rotation if rotation is None else rotation
        area = self._uniform(*s.scale, n, dev)
        log_ratio = self._uniform(math.log(s.ratio[0]), math.log(s.ratio[1]), n, dev)
        ratio = torch.exp(log_ratio)
        width = torch.sqrt(area * ratio).clamp(max=1.0)  # fraction of the image width kept
        height = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = self._uniform(-1.0, 1.0, n, dev) * (1 - width)
        cy = self._uniform(-1.0, 1.0, n, dev) * (1 - height)
        angle = self._uniform(-rotation, rotation, n, dev) * (math.pi / 180)
        flip = torch.where(self._uniform(0.0, 1.0, n, dev) < s.hflip, -1.0, 1.0)
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack([
            torch.stack([cos * width * flip, -sin * height, cx], dim=1),
            torch.stack([sin * width * flip, cos * height, cy], dim=1),
        ], dim=1)
        grid = F.affine_grid(theta, list(unit.shape), align_corners=False)
        return F.grid_sample(unit, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def colour_jitter(self, unit: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        """Per-image brightness, contrast and (RGB only) saturation factors; off for NO_COLOUR_JITTER modalities."""
        s, n, dev = self.settings, unit.shape[0], unit.device
        active = ~torch.isin(modality, torch.tensor(self._no_jitter, device=dev))
        shape = (n, 1, 1, 1)

        def factor(strength: float) -> torch.Tensor:
            f = self._uniform(1 - strength, 1 + strength, n, dev)
            return torch.where(active, f, torch.ones_like(f)).view(shape)

        brightness, contrast, saturation = factor(s.brightness), factor(s.contrast), factor(s.saturation)
        out = unit * brightness  # the one full-size copy; the rest works in place on it
        mean = _gray(out).mean(dim=(2, 3), keepdim=True)
        out.sub_(mean).mul_(contrast).add_(mean)
        if out.shape[1] == 3:
            gray = _gray(out)
            out.sub_(gray).mul_(saturation).add_(gray)
        return torch.where(active.view(shape), out.clamp_(0.0, 1.0), unit)

    def mix(self, unit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """MixUp or CutMix (chosen per batch) with a random pairing; returns the images, the pairing and lam."""
        s, n = self.settings, unit.shape[0]
        perm = torch.from_numpy(self.rng.permutation(n)).to(unit.device)
        if self.rng.uniform() < 0.5:
            lam = float(self.rng.beta(s.mixup_alpha, s.mixup_alpha))
            return lam * unit + (1 - lam) * unit[perm], perm, lam
        lam = float(self.rng.beta(s.cutmix_alpha, s.cutmix_alpha))
        h, w = unit.shape[2:]
        cut_h, cut_w = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
        y, x = int(self.rng.integers(h)), int(self.rng.integers(w))
        y0, y1 = max(y - cut_h // 2, 0), min(y + cut_h // 2, h)
        x0, x1 = max(x - cut_w // 2, 0), min(x + cut_w // 2, w)
        mixed = unit.clone()
        mixed[:, :, y0:y1, x0:x1] = unit[perm, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)  # the area actually kept
        return mixed, perm, lam


def _gray(unit: torch.Tensor) -> torch.Tensor:
    if unit.shape[1] == 1:
        return unit
    r, g, b = unit[:, 0:1], unit[:, 1:2], unit[:, 2:3]
    return 0.299 * r + 0.587 * g + 0.114 * b
