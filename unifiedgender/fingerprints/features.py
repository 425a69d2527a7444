"""Ridge features per fingerprint image and the feature table of a manifest (`ugn data features`).

Per image (lengths in pixels of the stored image):
  print size      foreground height, width and area fraction (a proxy of finger size on a fixed sensor)
  ridge frequency local spectral peak over 32 px windows: mean, median, sd, 10th/90th percentile, and the
                  mean in the upper, lower and central part of the print; ridge period = 1 / median
  density         ridge runs per 100 px along rows and columns of the binarised print
  ridge/valley    dark (ridge) fraction of the binarised print, ridge and valley width (fraction x period),
                  their ratio
  orientation     coherence mean / sd / fraction below 0.3, circular dispersion of the ridge orientation,
                  and an 8-bin coherence-weighted orientation histogram
  spectrum        the normalised 16-bin radial power spectrum of the central 64 px window
  grey levels     mean and sd of the print's raw pixels
An image that cannot be read or holds no print keeps its row with `status` naming why and empty features.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from unifiedgender.data.images import ImageReadError, load_image
from unifiedgender.errors import UserError
from unifiedgender.fileio import atomic_write
from unifiedgender.fingerprints import ridges

FEATURE_PREFIX = "rf_"  # every feature column starts with it
SPECTRUM_SIZE, SPECTRUM_BINS, ORIENTATION_BINS = 64, 16, 8
KEEP_COLUMNS = ("path", "subject_id", "gender", "modality", "split", "hand", "finger")


class NoPrintError(Exception):
    """The image holds no analysable print (no foreground, or no window with a ridge frequency)."""


def image_features(gray: np.ndarray) -> dict[str, float]:
    """The ridge features of one grayscale image (uint8 [H, W]); NoPrintError when there is no print."""
    mask = ridges.foreground_mask(gray)
    box = ridges.bounding_box(mask, margin=0)
    if box is None or mask.mean() < 0.05:
        raise NoPrintError("no fingerprint foreground found")
    local = ridges.local_frequency(gray, mask)
    if local.frequency.size == 0:
        raise NoPrintError("no window with a ridge frequency")
    top, bottom, left, right = box
    freq = local.frequency
    period = 1.0 / float(np.median(freq))
    out: dict[str, float] = {
        "height": float(bottom - top), "width": float(right - left), "area_fraction": float(mask.mean()),
        "freq_mean": float(freq.mean()), "freq_median": float(np.median(freq)), "freq_sd": float(freq.std()),
        "freq_p10": float(np.percentile(freq, 10)), "freq_p90": float(np.percentile(freq, 90)),
        "freq_upper": _region_mean(freq, local.centre_row < 0.45), "freq_lower": _region_mean(freq, local.centre_row > 0.55),
        "freq_centre": _region_mean(freq, (np.abs(local.centre_row - 0.5) < 0.2) & (np.abs(local.centre_col - 0.5) < 0.2)),
        "period": period, "windows": float(freq.size),
    }
    out.update(_binary_features(gray, mask, period))
    out.update(_orientation_features(gray, mask))
    spectrum = ridges.radial_spectrum(gray[top:bottom, left:right], SPECTRUM_SIZE, SPECTRUM_BINS)
    out.update({f"spectrum_{i:02d}": float(v) for i, v in enumerate(spectrum)})
    pixels = gray[mask].astype(np.float64)
    out.update({"grey_mean": float(pixels.mean()), "grey_sd": float(pixels.std())})
    return {FEATURE_PREFIX + k: v for k, v in out.items()}


def _region_mean(values: np.ndarray, where: np.ndarray) -> float:
    return float(values[where].mean()) if where.any() else float(values.mean())


def _binary_features(gray: np.ndarray, mask: np.ndarray, period: float) -> dict[str, float]:
    """Ridge fraction, ridge and valley width, and ridge runs per 100 px (rows and columns) of the print."""
    import cv2

    block = 2 * int(round(1.5 * period)) + 1
    binary = cv2.adaptiveThreshold(ridges.clahe(gray), 1, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, max(block, 3), 0)
    ridge = (binary == 1) & mask
    fraction = float(ridge.sum() / max(mask.sum(), 1))
    density = {}
    for name, axis in (("rows", 1), ("cols", 0)):
        starts = np.diff(ridge.astype(np.int8), axis=axis) == 1  # background -> ridge transitions
        density[f"ridge_runs_{name}"] = float(100.0 * starts.sum() / max(mask.sum(), 1))  # per 100 px of scan line
    ridge_width, valley_width = fraction * period, (1 - fraction) * period
    return {"ridge_fraction": fraction, "ridge_width": ridge_width, "valley_width": valley_width,
            "ridge_valley_ratio": ridge_width / max(valley_width, 1e-6), **density}


def _orientation_features(gray: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Coherence statistics, orientation dispersion and a coherence-weighted orientation histogram."""
    field = ridges.orientation_field(gray)
    coherence, normal = field.coherence[mask], field.normal[mask]
    ridge_angle = (normal + np.pi / 2) % np.pi
    weights = coherence / max(float(coherence.sum()), 1e-9)
    resultant = float(np.abs(np.sum(weights * np.exp(2j * ridge_angle))))
    hist, _ = np.histogram(ridge_angle, bins=ORIENTATION_BINS, range=(0, np.pi), weights=weights)
    out = {"coherence_mean": float(coherence.mean()), "coherence_sd": float(coherence.std()),
           "low_coherence_fraction": float((coherence < 0.3).mean()), "orientation_dispersion": 1.0 - resultant}
    out.update({f"orientation_{i}": float(v) for i, v in enumerate(hist)})
    return out


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The feature columns of a feature table, in table order."""
    return [c for c in frame.columns if c.startswith(FEATURE_PREFIX)]


@dataclass
class FeatureTable:
    """One row per manifest image: its identifying columns, `status` ("ok" or why not) and the features."""

    frame: pd.DataFrame

    @property
    def failures(self) -> dict[str, str]:
        bad = self.frame[self.frame["status"] != "ok"]
        return dict(zip(bad["path"], bad["status"]))


def _one(path: str) -> tuple[str, dict[str, float]]:
    try:
        gray = np.asarray(load_image(path, "L"))
        return "ok", image_features(gray)
    except (ImageReadError, NoPrintError) as exc:
        return str(exc), {}


def ridge_feature_table(manifest: pd.DataFrame, workers: int = 2,
                        progress: Callable[[int], None] | None = None) -> FeatureTable:
    """Ridge features for every image of a (validated) manifest, threads over images, manifest order kept."""
    paths = manifest["path"].astype(str).tolist()

    def work(path: str) -> tuple[str, dict[str, float]]:
        result = _one(path)
        if progress is not None:
            progress(1)
        return result

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(work, paths))
    keep = manifest[[c for c in KEEP_COLUMNS if c in manifest.columns]].reset_index(drop=True)
    features = pd.DataFrame([r[1] for r in results])
    table = pd.concat([keep, pd.DataFrame({"status": [r[0] for r in results]}), features], axis=1)
    return FeatureTable(table)


def write_feature_table(table: FeatureTable, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write the table as CSV atomically; refuses to replace an existing file unless `overwrite`."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise UserError(f"{path} already exists; pass --overwrite or choose another -o path")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        table.frame.to_csv(handle, index=False)
    return path


def read_feature_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a feature table written by `ugn data features`; UserError naming the file and what is missing."""
    from unifiedgender.evaluation.table import read_table_csv

    path = Path(path)
    frame = read_table_csv(path, f"feature table not found: {path}; write one with `ugn data features MANIFEST -o {path.name}`",
                           "write it again with `ugn data features`")
    for column in ("path", "subject_id", "status"):
        if column not in frame.columns:
            raise UserError(f"{path}: missing column '{column}'; write it again with `ugn data features`")
    if not feature_columns(frame):
        raise UserError(f"{path}: no '{FEATURE_PREFIX}' feature columns; write it again with `ugn data features`")
    return frame
