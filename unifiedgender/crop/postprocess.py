"""Mask post-processing for point-prompt cropping: pure functions on 2-D masks.

The finger-fluting study's recipe: dilate the chosen mask by 5 px (a true disk), keep the largest connected
component, crop to its bounding box. Boxes are ``(x0, y0, x1, y1)`` in pixels with ``x1``/``y1`` exclusive, so
``image[y0:y1, x0:x1]`` (or ``PIL.Image.crop(box)``) is the crop and ``x1 - x0`` its width.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np


class Box(NamedTuple):
    """A pixel box; x1 and y1 are exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int


def disk(radius: int) -> np.ndarray:
    """A true disk structuring element: the pixels whose centre lies within `radius` of the middle (uint8 0/1)."""
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    offsets = np.arange(-radius, radius + 1)
    return ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius**2).astype(np.uint8)


def binarize(mask: np.ndarray) -> np.ndarray:
    """Any 2-D mask (bool, 0/1 float as SAM2 returns, 0/255) as uint8 0/1, the type OpenCV needs."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    return (np.asarray(mask) > 0.5).astype(np.uint8)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Dilate a 0/1 uint8 mask by a disk of `radius` pixels; pixels outside the image count as background."""
    if radius == 0:
        return mask.copy()
    return cv2.dilate(mask, disk(radius), borderType=cv2.BORDER_CONSTANT, borderValue=0)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a 0/1 uint8 mask (all zeros when the mask is empty).

    Ties go to the component found first in raster order, so the result is deterministic.
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return np.zeros_like(mask)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (labels == largest).astype(np.uint8)


def bounding_box(mask: np.ndarray) -> Box | None:
    """The tight box around the non-zero pixels, or None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return Box(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def crop_region(mask: np.ndarray, dilate_radius: int = 5) -> tuple[np.ndarray, Box | None]:
    """Binarize, dilate, keep the largest component; return that component and its box (None when empty)."""
    component = largest_component(dilate(binarize(mask), dilate_radius))
    return component, bounding_box(component)
