"""Ridge analysis of one grayscale fingerprint (uint8 [H, W], dark ridges on a light background) with OpenCV.

Foreground segmentation by local contrast, CLAHE, the orientation field from smoothed gradient moments,
local ridge frequency from the power spectrum of windows, and oriented Gabor enhancement. Lengths are in
pixels of the image as given (SOCOFing: one sensor, so pixels are comparable across prints).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unifiedgender.errors import UserError

try:
    import cv2
except ImportError as exc:  # an optional extra
    raise UserError("fingerprint ridge analysis needs OpenCV: pip install 'unifiedgender[fingerprint]'") from exc

MIN_PERIOD, MAX_PERIOD = 2.2, 25.0  # plausible ridge periods (pixels); spectral peaks outside are ignored
DEFAULT_PERIOD = 7.0  # used by Gabor enhancement when no window gives a frequency
WINDOW, STRIDE = 32, 8  # local spectrum windows


def clahe(gray: np.ndarray, clip_limit: float = 2.0, tiles: int = 8) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (uint8 in, uint8 out)."""
    return cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tiles, tiles)).apply(np.ascontiguousarray(gray))


def foreground_mask(gray: np.ndarray, sigma: float = 4.0, relative: float = 0.25) -> np.ndarray:
    """Boolean mask of the print: inside the frame of uniform edge lines (scanner borders), local standard
    deviation above `relative` of its 95th percentile, closed, opened, reduced to the largest connected region."""
    mask = np.zeros(gray.shape, dtype=bool)
    top, bottom, left, right = inner_frame(gray)
    if bottom - top < 8 or right - left < 8:
        return mask
    img = gray[top:bottom, left:right].astype(np.float32)
    mean = cv2.GaussianBlur(img, (0, 0), sigma)
    var = np.maximum(cv2.GaussianBlur(img * img, (0, 0), sigma) - mean * mean, 0)
    std = np.sqrt(var)
    high = float(np.percentile(std, 95))
    if high <= 1.0:  # flat image: no print
        return mask
    inner = (std > relative * high).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    inner = cv2.morphologyEx(cv2.morphologyEx(inner, cv2.MORPH_CLOSE, kernel), cv2.MORPH_OPEN, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(inner, connectivity=8)
    if count > 1:
        mask[top:bottom, left:right] = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return mask


def inner_frame(gray: np.ndarray, max_std: float = 12.0) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) after dropping edge rows and columns of near-uniform grey (sensor frames
    such as SOCOFing's black bottom/right and grey top/left lines)."""
    img = gray.astype(np.float32)
    frame = (0, img.shape[0], 0, img.shape[1])
    while True:  # repeat: a frame line along one side hides the uniform lines of the sides it crosses
        top, bottom, left, right = frame
        while bottom - top > 8 and img[top, left:right].std() < max_std:
            top += 1
        while bottom - top > 8 and img[bottom - 1, left:right].std() < max_std:
            bottom -= 1
        while right - left > 8 and img[top:bottom, left].std() < max_std:
            left += 1
        while right - left > 8 and img[top:bottom, right - 1].std() < max_std:
            right -= 1
        if (top, bottom, left, right) == frame:
            return frame
        frame = (top, bottom, left, right)


def bounding_box(mask: np.ndarray, margin: int = 2) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of the mask's pixels plus `margin`, clipped to the image; None when empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    height, width = mask.shape
    return (max(int(rows[0]) - margin, 0), min(int(rows[-1]) + 1 + margin, height),
            max(int(cols[0]) - margin, 0), min(int(cols[-1]) + 1 + margin, width))


@dataclass(frozen=True)
class OrientationField:
    """Per pixel: gradient (ridge-normal) angle in [0, pi) and coherence in [0, 1]."""

    normal: np.ndarray
    coherence: np.ndarray


def orientation_field(gray: np.ndarray, sigma: float = 5.0) -> OrientationField:
    """Orientation of the ridge normals from Gaussian-smoothed gradient moments (doubled-angle averaging)."""
    img = gray.astype(np.float32)
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3)
    gxx = cv2.GaussianBlur(gx * gx, (0, 0), sigma)
    gyy = cv2.GaussianBlur(gy * gy, (0, 0), sigma)
    gxy = cv2.GaussianBlur(gx * gy, (0, 0), sigma)
    normal = (0.5 * np.arctan2(2 * gxy, gxx - gyy)) % np.pi
    coherence = np.sqrt((gxx - gyy) ** 2 + 4 * gxy**2) / np.maximum(gxx + gyy, 1e-6)
    return OrientationField(normal.astype(np.float32), np.clip(coherence, 0, 1).astype(np.float32))


@dataclass(frozen=True)
class LocalFrequency:
    """Dominant ridge frequency (cycles per pixel) of each analysed window, with the window's centre."""

    frequency: np.ndarray  # [n]
    centre_row: np.ndarray  # [n], as a fraction of the image height
    centre_col: np.ndarray  # [n], as a fraction of the image width


def local_frequency(gray: np.ndarray, mask: np.ndarray, window: int = WINDOW, stride: int = STRIDE,
                    min_foreground: float = 0.75) -> LocalFrequency:
    """Peak of the radial power spectrum (Hann-windowed, parabolic sub-bin refinement) of every window that
    lies mostly on the print; windows whose peak is outside MIN_PERIOD..MAX_PERIOD are skipped."""
    height, width = gray.shape
    hann = np.outer(np.hanning(window), np.hanning(window)).astype(np.float32)
    radius = _radius_grid(window)
    low, high = window / MAX_PERIOD, window / MIN_PERIOD
    freqs, rows, cols = [], [], []
    for top in range(0, max(height - window, 0) + 1, stride):
        for left in range(0, max(width - window, 0) + 1, stride):
            if mask[top:top + window, left:left + window].mean() < min_foreground:
                continue
            patch = gray[top:top + window, left:left + window].astype(np.float32)
            if patch.shape != (window, window):
                continue
            profile = _radial_profile((patch - patch.mean()) * hann, radius, window // 2)
            peak = _profile_peak(profile, low, high)
            if peak is not None:
                freqs.append(peak / window)
                rows.append((top + window / 2) / height)
                cols.append((left + window / 2) / width)
    return LocalFrequency(np.asarray(freqs, dtype=np.float64), np.asarray(rows), np.asarray(cols))


def radial_spectrum(gray: np.ndarray, size: int, bins: int) -> np.ndarray:
    """The normalised radial power spectrum (`bins` values summing to 1) of the central size x size window
    (Hann-windowed, mean removed); the image is padded with its mean when smaller."""
    img = gray.astype(np.float32)
    height, width = img.shape
    if height < size or width < size:
        padded = np.full((max(height, size), max(width, size)), img.mean(), dtype=np.float32)
        padded[:height, :width] = img
        img, (height, width) = padded, padded.shape
    top, left = (height - size) // 2, (width - size) // 2
    patch = img[top:top + size, left:left + size]
    hann = np.outer(np.hanning(size), np.hanning(size)).astype(np.float32)
    profile = _radial_profile((patch - patch.mean()) * hann, _radius_grid(size), size // 2)[1:]
    edges = np.linspace(0, len(profile), bins + 1).astype(int)
    binned = np.array([profile[a:b].sum() for a, b in zip(edges[:-1], edges[1:])])
    total = binned.sum()
    return binned / total if total > 0 else binned


def gabor_enhance(gray: np.ndarray, mask: np.ndarray | None = None, orientations: int = 8) -> np.ndarray:
    """Oriented Gabor filtering: each pixel takes the response of the filter (at the print's median ridge
    period) whose orientation matches the local orientation field. Ridges stay dark; the background
    (outside `mask`) becomes white. uint8 out."""
    if mask is None:
        mask = foreground_mask(gray)
    freq = local_frequency(gray, mask).frequency
    period = float(np.median(1.0 / freq)) if freq.size else DEFAULT_PERIOD
    img = gray.astype(np.float32)
    img = (img - img.mean()) / max(float(img.std()), 1e-6)
    field = orientation_field(gray)
    sigma = 0.5 * period
    size = 2 * int(np.ceil(3 * sigma)) + 1
    responses = []
    for k in range(orientations):
        kernel = cv2.getGaborKernel((size, size), sigma, np.pi * k / orientations, period, 1.0, 0, ktype=cv2.CV_32F)
        kernel -= kernel.mean()
        responses.append(cv2.filter2D(img, cv2.CV_32F, kernel))
    index = np.rint(field.normal / (np.pi / orientations)).astype(int) % orientations
    out = np.take_along_axis(np.stack(responses), index[None], axis=0)[0]
    scale = float(np.percentile(np.abs(out[mask]), 99)) if mask.any() else float(np.abs(out).max())
    out = 127.5 + 127.5 * np.clip(out / max(scale, 1e-6), -1, 1)
    out[~mask] = 255
    return out.astype(np.uint8)


def _radius_grid(size: int) -> np.ndarray:
    centre = size // 2
    yy, xx = np.mgrid[:size, :size]
    return np.rint(np.hypot(yy - centre, xx - centre)).astype(int)


def _radial_profile(patch: np.ndarray, radius: np.ndarray, max_radius: int) -> np.ndarray:
    """Summed power per integer radius 0..max_radius of the centred 2-D spectrum."""
    power = np.abs(np.fft.fftshift(np.fft.fft2(patch))) ** 2
    keep = radius <= max_radius
    return np.bincount(radius[keep], weights=power[keep], minlength=max_radius + 1)[: max_radius + 1]


def _profile_peak(profile: np.ndarray, low: float, high: float) -> float | None:
    """Sub-bin position of the largest value with radius in [low, high]; None at the band's edge or when flat."""
    first, last = int(np.ceil(low)), min(int(np.floor(high)), len(profile) - 2)
    if last <= first:
        return None
    band = profile[first:last + 1]
    if band.max() <= 0:
        return None
    i = first + int(np.argmax(band))
    if i in (first, last):
        return None
    left, mid, right = profile[i - 1], profile[i], profile[i + 1]
    denom = left - 2 * mid + right
    return i + (0.5 * (left - right) / denom if denom < 0 else 0.0)
