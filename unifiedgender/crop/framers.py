"""What `ugn crop` keeps of an image: SAM2's masked object (`SamFramer`) or the aligned largest face (`FaceFramer`).

A framer turns an RGB array into a `Framing`: the crop, the box it came from, a score, a status and, when asked,
the mask and a preview. The crop pipeline writes these; it does not know which detector made them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image

from unifiedgender.crop.face import STATUS_NO_FACE, FaceDetector
from unifiedgender.crop.postprocess import Box, crop_region
from unifiedgender.crop.preview import draw_preview
from unifiedgender.crop.prompts import prompt_points
from unifiedgender.crop.sam import predict_best_mask

STATUS_OK = "ok"
STATUS_EMPTY = "empty mask: kept uncropped"
STATUS_NO_FACE_KEPT = f"{STATUS_NO_FACE}: kept uncropped"


@dataclass
class Framing:
    """One image's crop and how it was found (`points`: SAM2 prompt count, None for the face detector)."""

    crop: np.ndarray
    box: Box | None
    score: float | None
    points: int | None
    status: str
    mask: np.ndarray | None = None
    preview: Image.Image | None = None


class Framer(Protocol):
    def frame(self, rgb: np.ndarray, preview: bool) -> Framing: ...


class SamFramer:
    """The largest mask component SAM2 finds from central point prompts, dilated, as a box crop."""

    def __init__(self, predictor: Any, n_points: int, point_spacing: float, dilate_radius: int) -> None:
        self.predictor = predictor
        self.n_points, self.point_spacing, self.dilate_radius = n_points, point_spacing, dilate_radius

    def frame(self, rgb: np.ndarray, preview: bool) -> Framing:
        height, width = rgb.shape[:2]
        points = prompt_points(width, height, self.n_points, self.point_spacing)
        mask, score = predict_best_mask(self.predictor, rgb, points)
        component, box = crop_region(mask, self.dilate_radius)
        crop_box = box or Box(0, 0, width, height)
        crop = rgb[crop_box.y0 : crop_box.y1, crop_box.x0 : crop_box.x1]
        status = STATUS_OK if box is not None else STATUS_EMPTY
        shown = draw_preview(rgb, component, box, points) if preview else None
        return Framing(crop, crop_box, score, self.n_points, status, component, shown)


class FaceFramer:
    """The largest face, aligned (eyes level, margin added) to a square; the whole image when there is none."""

    def __init__(self, detector: FaceDetector | None = None) -> None:
        self.detector = detector or FaceDetector()

    def frame(self, rgb: np.ndarray, preview: bool) -> Framing:
        faces = self.detector.detect(rgb)
        if not faces:
            return Framing(rgb, None, None, None, STATUS_NO_FACE_KEPT)
        face = faces[0]
        shown = None
        if preview:
            shown = draw_preview(rgb, np.zeros(rgb.shape[:2], dtype=bool), face.box, np.empty((0, 2)))
        return Framing(self.detector.align(rgb, face), face.box, face.score, None, STATUS_OK, preview=shown)
