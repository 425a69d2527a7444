"""The evaluation transform: PIL image -> normalized tensor, built from a model's data config.

This is the one preprocessing used by evaluate, predict, serve and export (training augmentation lives in
unifiedgender.training.augment). It matches timm's eval transform for the same config.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from unifiedgender.errors import UserError

DATA_CONFIG_KEYS = ("input_size", "mean", "std", "interpolation", "crop_pct")
CROP_MODES = ("center", "squash")


def validate_data_config(data_config: Mapping[str, Any]) -> None:
    """Raise UserError naming the first missing or bad key."""
    missing = [k for k in DATA_CONFIG_KEYS if k not in data_config]
    if missing:
        raise UserError(f"data config lacks '{missing[0]}' (needs {', '.join(DATA_CONFIG_KEYS)}); re-save the checkpoint")
    channels = int(data_config["input_size"][0])
    if len(data_config["input_size"]) != 3 or channels not in (1, 3):
        raise UserError(f"data config input_size {data_config['input_size']} must be [1 or 3, H, W]")
    if len(data_config["mean"]) != channels or len(data_config["std"]) != channels:
        raise UserError(f"data config mean/std need {channels} values, got {data_config['mean']} / {data_config['std']}")
    if not 0 < float(data_config["crop_pct"]) <= 1:
        raise UserError(f"data config crop_pct {data_config['crop_pct']} must be in (0, 1]")
    face_crop = data_config.get("face_crop")
    if face_crop is not None and (isinstance(face_crop, bool) or not isinstance(face_crop, (int, float)) or not 0 <= face_crop <= 2):
        raise UserError(f"data config face_crop {face_crop!r} must be a margin between 0 and 2 (or absent)")
    if data_config.get("crop_mode", "center") not in CROP_MODES:
        raise UserError(f"data config crop_mode '{data_config['crop_mode']}' unsupported; use one of {', '.join(CROP_MODES)}")


class FaceFraming:
    """PIL image -> its largest face in the canonical framing (margin `padding`), in the image's mode; the image
    itself when no face is found. Picklable: the detector is shared per process and loaded on first use."""

    def __init__(self, padding: float) -> None:
        self.padding = float(padding)

    def __call__(self, image: Any) -> Any:
        from unifiedgender.crop.face import face_detector

        framed, _ = face_detector(self.padding).frame(image)
        return framed if framed.mode == image.mode else framed.convert(image.mode)


def face_framing(data_config: Mapping[str, Any]) -> FaceFraming | None:
    """The face framing a data config asks for (its `face_crop` margin), None when it has none."""
    padding = data_config.get("face_crop")
    return None if padding is None else FaceFraming(padding)


class EvalTransform:
    """Frame the face (data configs with `face_crop`), convert mode, resize (shorter side to size / crop_pct, or both sides for 'squash'), center-crop,
    to tensor, normalize. Picklable, so it can travel to DataLoader workers."""

    def __init__(self, data_config: Mapping[str, Any]) -> None:
        from torchvision import transforms as T
        from torchvision.transforms import InterpolationMode

        validate_data_config(data_config)
        channels, height, width = (int(v) for v in data_config["input_size"])
        crop_pct = float(data_config["crop_pct"])
        try:
            interpolation = InterpolationMode(str(data_config["interpolation"]))
        except ValueError as exc:
            raise UserError(f"data config interpolation '{data_config['interpolation']}' unknown; use bilinear or bicubic") from exc
        if data_config.get("crop_mode", "center") == "squash":
            resize: int | tuple[int, int] = (math.floor(height / crop_pct), math.floor(width / crop_pct))
        elif height == width:
            resize = math.floor(height / crop_pct)
        else:
            resize = (math.floor(height / crop_pct), math.floor(width / crop_pct))
        self.mode = "L" if channels == 1 else "RGB"
        self.data_config = dict(data_config)
        self.frame = face_framing(data_config)
        self.pipeline = T.Compose([
            T.Resize(resize, interpolation=interpolation),
            T.CenterCrop((height, width)),
            T.ToTensor(),
            T.Normalize(list(data_config["mean"]), list(data_config["std"])),
        ])

    def __call__(self, image: Any) -> Any:
        return self.prepare(self.frame(image) if self.frame is not None else image)

    def prepare(self, image: Any) -> Any:
        """Everything after the face framing: for images that are already framed (e.g. detected face chips)."""
        if image.mode != self.mode:
            image = image.convert(self.mode)
        return self.pipeline(image)

    def __repr__(self) -> str:
        return f"EvalTransform(mode={self.mode}, {self.pipeline})"


def build_eval_transform(data_config: Mapping[str, Any]) -> EvalTransform:
    """The eval preprocessing for a model's `data_config` (from the model or its checkpoint)."""
    return EvalTransform(data_config)
