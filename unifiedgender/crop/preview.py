"""Preview images: the kept mask tinted over the image, its box outlined and the prompt points marked."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from unifiedgender.crop.postprocess import Box

MASK_COLOUR = np.array([30, 144, 255], dtype=np.float64)  # blue tint, as in SAM2's notebooks
BOX_COLOUR = (0, 220, 0)
POINT_COLOUR = (255, 40, 40)


def draw_preview(image_rgb: np.ndarray, mask: np.ndarray, box: Box | None, points: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """An RGB image showing what was kept: mask at `alpha`, box in green, prompt points in red."""
    blended = image_rgb.astype(np.float64)
    inside = mask.astype(bool)
    blended[inside] = (1 - alpha) * blended[inside] + alpha * MASK_COLOUR
    preview = Image.fromarray(np.clip(blended + 0.5, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(preview)
    width = max(1, round(min(preview.size) / 150))
    if box is not None:
        draw.rectangle((box.x0, box.y0, box.x1 - 1, box.y1 - 1), outline=BOX_COLOUR, width=width)
    radius = 2 * width + 1
    for x, y in points:
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=POINT_COLOUR, outline=(255, 255, 255))
    return preview
