"""Synthetic fingerprints for the fingerprint tests: sinusoidal ridges of a chosen period and ridge thickness
inside an ellipse, on a white background with a SOCOFing-like black frame line at the bottom and right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

FINGERS = ("thumb", "index", "middle", "ring", "little")


def synthetic_print(period: float = 6.0, ridge_share: float = 0.5, size: tuple[int, int] = (103, 96),
                    angle: float = 0.3, seed: int = 0) -> np.ndarray:
    """uint8 [H, W]: dark ridges (about `ridge_share` of each period) in an ellipse, white elsewhere."""
    rng = np.random.default_rng(seed)
    height, width = size
    yy, xx = np.mgrid[:height, :width].astype(np.float64)
    phase = (xx * np.cos(angle) + yy * np.sin(angle) + 0.002 * (yy - height / 2) ** 2) / period
    wave = np.cos(2 * np.pi * phase)
    cut = np.cos(np.pi * ridge_share)  # wave above cut <=> inside a ridge of the given share
    img = np.where(wave > cut, 30.0, 225.0) + rng.normal(0, 8, size)
    inside = ((yy - height * 0.52) / (height * 0.42)) ** 2 + ((xx - width * 0.5) / (width * 0.36)) ** 2 <= 1
    img = np.where(inside, img, 255.0)
    img[-3:, :] = 0
    img[:, -3:] = 0
    return np.clip(img, 0, 255).astype(np.uint8)


def write_print(path: Path, **kwargs) -> Path:
    Image.fromarray(synthetic_print(**kwargs), mode="L").save(path)
    return path


def fingerprint_manifest(folder: Path, people: int, seed: int = 0, split: str = "train") -> pd.DataFrame:
    """`people` people with ten prints each; men have a longer ridge period at the index fingers only."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for person in range(people):
        gender = "male" if person % 2 else "female"
        for hand in ("left", "right"):
            for finger in FINGERS:
                period = 5.0 + rng.uniform(-0.4, 0.4)
                if finger == "index" and gender == "male":
                    period += 2.5
                name = f"{split}{person}__{gender[0].upper()}_{hand}_{finger}.png"
                write_print(folder / name, period=period, angle=rng.uniform(0, 3), seed=int(rng.integers(1 << 30)))
                rows.append({"path": str(folder / name), "subject_id": f"{split}{person}", "gender": gender,
                             "modality": "fingerprint", "split": split, "hand": hand, "finger": finger})
    return pd.DataFrame(rows)
