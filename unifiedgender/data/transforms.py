"""The evaluation transform: PIL image -> normalized tensor, built from a model's data config.

This is the one preprocessing used by evaluate, predict, serve and export (training augmentation lives in
unifiedgender.training.augment). It matches timm's eval transform for the same config.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from unifiedgender.errors import UserError

DATA_CONFIG_KEYS = ("input_size", "mean", "std", "interpolation", "crop_pct")  # required; optional: crop_mode, preprocess, face_crop
CROP_MODES = ("center", "squash")
MAX_INPUT_SIDE = 4096  # model input height/width; larger claims (30000x30000) would exhaust memory per image


def validate_data_config(data_config: Mapping[str, Any], source: str = "data config") -> None:
    """Raise UserError naming `source` and the first missing or bad key (a hostile file can claim anything)."""
    fix = "re-save the checkpoint or re-export the model"
    if not isinstance(data_config, Mapping):
        raise UserError(f"{source}: data config is a {type(data_config).__name__}, not a mapping; {fix}")
    missing = [k for k in DATA_CONFIG_KEYS if k not in data_config]
    if missing:
        raise UserError(f"{source}: data config lacks '{missing[0]}' (needs {', '.join(DATA_CONFIG_KEYS)}); {fix}")
    try:
        size = [int(v) for v in data_config["input_size"]]
        mean = [float(v) for v in data_config["mean"]]
        std = [float(v) for v in data_config["std"]]
        crop_pct = float(data_config["crop_pct"])
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{source}: data config input_size/mean/std/crop_pct are not numbers; {fix}") from None
    if len(size) != 3 or size[0] not in (1, 3) or not all(1 <= side <= MAX_INPUT_SIDE for side in size[1:]):
        raise UserError(f"{source}: data config input_size {data_config['input_size']} must be [1 or 3, H, W] "
                        f"with H and W between 1 and {MAX_INPUT_SIDE}; {fix}")
    if len(mean) != size[0] or len(std) != size[0]:
        raise UserError(f"{source}: data config mean/std need {size[0]} values, got {data_config['mean']} / {data_config['std']}")
    if not all(math.isfinite(v) for v in mean) or not all(math.isfinite(v) and v > 0 for v in std):
        raise UserError(f"{source}: data config mean {mean} / std {std} must be finite with std > 0; {fix}")
    if not 0 < crop_pct <= 1:
        raise UserError(f"{source}: data config crop_pct {data_config['crop_pct']} must be in (0, 1]")
    face_crop = data_config.get("face_crop")
    if face_crop is not None and (isinstance(face_crop, bool) or not isinstance(face_crop, (int, float)) or not 0 <= face_crop <= 2):
        raise UserError(f"{source}: data config face_crop {face_crop!r} must be a margin between 0 and 2 (or absent); {fix}")
    if data_config.get("crop_mode", "center") not in CROP_MODES:
        raise UserError(f"{source}: data config crop_mode '{data_config['crop_mode']}' unsupported; use one of {', '.join(CROP_MODES)}")
    if data_config.get("preprocess"):
        from unifiedgender.fingerprints.preprocess import parse_preprocess

        parse_preprocess(data_config["preprocess"])


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
    """Frame the face (data configs with `face_crop`), convert mode, the data config's `preprocess` steps if any
    (unifiedgender.fingerprints.preprocess), resize (shorter side to size / crop_pct, or both sides for 'squash'), center-crop,
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
        self.preprocess = build_preprocess(data_config)
        self.frame = face_framing(data_config)
        self.pipeline = T.Compose([
            T.Resize(resize, interpolation=interpolation),
            T.CenterCrop((height, width)),
            T.ToTensor(),
            T.Normalize(list(data_config["mean"]), list(data_config["std"])),
        ])

    def __call__(self, image: Any) -> Any:
        return self.prepare(self._framed(image))

    def prepare(self, image: Any) -> Any:
        """Everything after the face framing: for images that are already framed (e.g. detected face chips)."""
        return self.pipeline(self._preprocessed(image))

    def uint8(self, image: Any, framed: bool = False) -> Any:
        """Framing (unless `framed`), mode, preprocessing, resize and crop, without the float conversion: a uint8
        tensor [C,H,W] (the training cache's images; on a GPU normalised on the device, 4x less to copy)."""
        from torchvision.transforms.functional import pil_to_tensor

        resize, crop = self.pipeline.transforms[:2]
        return pil_to_tensor(crop(resize(self._preprocessed(image if framed else self._framed(image)))))

    def _framed(self, image: Any) -> Any:
        return self.frame(image) if self.frame is not None else image

    def _preprocessed(self, image: Any) -> Any:
        if image.mode != self.mode:
            image = image.convert(self.mode)
        return self.preprocess(image) if self.preprocess is not None else image

    def __repr__(self) -> str:
        return f"EvalTransform(mode={self.mode}, face_crop={self.data_config.get('face_crop')}, preprocess={self.preprocess}, {self.pipeline})"


def build_preprocess(data_config: Mapping[str, Any]) -> Any:
    """The image-to-image step named by the data config's `preprocess` (a FingerprintPreprocess), or None."""
    if not data_config.get("preprocess"):
        return None
    from unifiedgender.fingerprints.preprocess import FingerprintPreprocess

    return FingerprintPreprocess(str(data_config["preprocess"]))


def build_eval_transform(data_config: Mapping[str, Any]) -> EvalTransform:
    """The eval preprocessing for a model's `data_config` (from the model or its checkpoint)."""
    return EvalTransform(data_config)
