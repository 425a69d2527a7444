"""Point prompts for SAM2: one central point, or the centre and four points around it."""

from __future__ import annotations

import numpy as np

from unifiedgender.errors import UserError

POINT_COUNTS = (1, 5)
DEFAULT_POINT_SPACING = 0.1


def prompt_points(width: int, height: int, n_points: int = 1, spacing: float = DEFAULT_POINT_SPACING) -> np.ndarray:
    """Foreground prompts as an (N, 2) float array of (x, y) pixel coordinates.

    One point: the image centre. Five points: the centre plus the points `spacing` x the shorter side to its
    left, right, top and bottom.
    """
    if n_points not in POINT_COUNTS:
        raise UserError(f"--points {n_points} is not supported; use 1 (the centre) or 5 (the centre and four around it)")
    if not 0 < spacing < 0.5:
        raise UserError(f"--point-spacing {spacing} is out of range; use a fraction of the shorter side in (0, 0.5), e.g. 0.1")
    cx, cy = width / 2.0, height / 2.0
    if n_points == 1:
        return np.array([[cx, cy]], dtype=np.float32)
    step = spacing * min(width, height)
    return np.array(
        [[cx, cy], [cx - step, cy], [cx + step, cy], [cx, cy - step], [cx, cy + step]], dtype=np.float32
    )
