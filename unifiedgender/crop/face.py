"""Offline face detection and alignment: one canonical face framing for training, evaluation and prediction.

The detector is dlib's HOG frontal-face detector (built into dlib, no model file) and the alignment uses dlib's
5-point landmark model from the `face_recognition_models` package: both install from PyPI (`dlib-bin`,
`face-recognition-models`) and need no download at run time. A face is framed the way dlib frames face chips:
rotated so that the eyes are level, scaled so that the landmarks fill the middle of a square and a margin of
`FACE_PADDING` (a fraction of the face size) added on each side. Where that square leaves the image, the edge
pixels are repeated. The same framing applied to any photo or dataset gives the model the same view of a face.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from unifiedgender.crop.postprocess import Box
from unifiedgender.errors import UserError

FACE_CHIP_SIZE = 224  # side of an aligned face in pixels
FACE_PADDING = 0.2  # margin around the landmarks, as a fraction of the face; UTKFace's 200 px chips hold about 0.19
STATUS_NO_FACE = "no face found"
LANDMARK_MODEL = "shape_predictor_5_face_landmarks.dat"
INSTALL_HINT = "pip install 'unifiedgender[faces]' (dlib-bin and face-recognition-models)"


@dataclass(frozen=True)
class Face:
    """One detected face: its detector box (clipped to the image), detector score and aligned-chip geometry."""

    box: Box
    score: float
    centre: tuple[float, float]  # centre of the aligned square, image pixels
    side: float  # side of the aligned square, image pixels
    angle: float  # rotation of the square, radians (dlib's convention)


def face_margin(data_config: Mapping[str, Any]) -> float:
    """The framing margin for a model: the one it was trained with (`face_crop`), else the one its backbone's
    weights expect (`face_margin`, e.g. dlib's face network), else `FACE_PADDING`."""
    return float(data_config.get("face_crop", data_config.get("face_margin", FACE_PADDING)))


def face_models_file(filename: str) -> Path | None:
    """A model file shipped by the `face_recognition_models` package (found without importing it: its
    `__init__` needs pkg_resources), if installed. Kept free of torch, like the detector."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / filename
    return path if path.is_file() else None


def landmark_model_path() -> Path:
    """The 5-point landmark model shipped by `face_recognition_models`."""
    path = face_models_file(LANDMARK_MODEL)
    if path is None:
        raise UserError(f"the face detector needs {LANDMARK_MODEL} from the face-recognition-models package; {INSTALL_HINT}")
    return path


def _dlib() -> Any:
    try:
        import dlib
    except ImportError as exc:
        raise UserError(f"the face detector needs dlib; {INSTALL_HINT}") from exc
    return dlib


class FaceDetector:
    """Finds and aligns faces; safe to share between threads (each thread gets its own dlib objects)."""

    def __init__(self, chip_size: int = FACE_CHIP_SIZE, padding: float = FACE_PADDING) -> None:
        if chip_size < 16:
            raise UserError(f"face chip size {chip_size} is too small; use at least 16 pixels")
        if not 0.0 <= padding <= 2.0:
            raise UserError(f"face padding {padding} is out of range; use a fraction between 0 and 2")
        self.chip_size = chip_size
        self.padding = padding
        self._dlib = _dlib()
        self._model = str(landmark_model_path())
        self._local = threading.local()
        self._parts()  # load once now, so that a broken install fails before any image is read

    def _parts(self) -> tuple[Any, Any]:
        if not hasattr(self._local, "detector"):
            self._local.detector = self._dlib.get_frontal_face_detector()
            self._local.landmarks = self._dlib.shape_predictor(self._model)
        return self._local.detector, self._local.landmarks

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Every face in an RGB uint8 image, largest first; small faces are looked for only when none is found."""
        detector, landmarks = self._parts()
        rgb = np.ascontiguousarray(rgb)
        height, width = rgb.shape[:2]
        rects, scores, _ = detector.run(rgb, 0, 0.0)
        if not len(rects):
            rects, scores, _ = detector.run(rgb, 1, 0.0)  # upsampled once: faces down to about 40 px
        faces = []
        for rect, score in zip(rects, scores):
            chip = self._dlib.get_face_chip_details(landmarks(rgb, rect), self.chip_size, self.padding)
            box = Box(max(0, rect.left()), max(0, rect.top()), min(width, rect.right() + 1), min(height, rect.bottom() + 1))
            centre = chip.rect.center()
            faces.append(Face(box, float(score), (centre.x, centre.y), float(chip.rect.width()), float(chip.angle)))
        return sorted(faces, key=lambda f: (f.box.x1 - f.box.x0) * (f.box.y1 - f.box.y0), reverse=True)

    def align(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        """The aligned `chip_size` square of `face` (uint8 RGB); edge pixels repeated where it leaves the image."""
        height, width = rgb.shape[:2]
        reach = face.side / 2 * (abs(math.cos(face.angle)) + abs(math.sin(face.angle)))
        cx, cy = face.centre
        margin = max(0, math.ceil(max(reach - cx, reach - cy, cx + reach - width, cy + reach - height)) + 2)
        if margin:
            rgb = np.pad(rgb, ((margin, margin), (margin, margin), (0, 0)), mode="edge")
        half = face.side / 2
        rect = self._dlib.drectangle(cx - half + margin, cy - half + margin, cx + half + margin, cy + half + margin)
        details = self._dlib.chip_details(rect, self._dlib.chip_dims(self.chip_size, self.chip_size), face.angle)
        return self._dlib.extract_image_chip(np.ascontiguousarray(rgb), details)

    def frame(self, image: Image.Image) -> tuple[Image.Image, Face | None]:
        """The largest face of `image` aligned (RGB), or the image itself and None when no face is found."""
        rgb = np.array(image.convert("RGB"), dtype=np.uint8)
        faces = self.detect(rgb)
        if not faces:
            return image, None
        return Image.fromarray(self.align(rgb, faces[0])), faces[0]


@functools.lru_cache(maxsize=4)
def face_detector(padding: float = FACE_PADDING) -> FaceDetector:
    """One shared detector per margin (loaded on first use)."""
    return FaceDetector(padding=padding)
