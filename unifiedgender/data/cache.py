"""Decode each image once into a uint8 array at training resolution, in memory or as a memory-mapped .npy.

The geometry is the evaluation preprocessing of the backbone's data config (resize to size / crop_pct,
centre crop), so validation during training sees exactly what `ugn evaluate` sees; training augmentation
then runs on the device from these arrays. Disk caches are keyed by the image files (path, size, mtime)
and the geometry, so a second run over the same manifest reuses them. An unreadable image is recorded with
its reason in `status` (its slot stays zero) and never stops the build.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unifiedgender.data.images import ImageReadError, load_image
from unifiedgender.fileio import atomic_path, atomic_write

CACHE_FORMAT = "ugn-decoded/1"
CACHE_MODES = ("auto", "memory", "disk")
DEFAULT_MEMORY_LIMIT = 4 * 1024**3  # auto mode keeps sets up to this size in memory


@dataclass(frozen=True)
class Geometry:
    """Target size and resampling of the cached images (from the model's data config)."""

    channels: int
    height: int
    width: int
    interpolation: str = "bicubic"
    crop_pct: float = 1.0
    crop_mode: str = "center"
    face_crop: float | None = None  # margin of the canonical face framing applied before resizing; None: off

    @classmethod
    def from_data_config(cls, data_config: dict) -> Geometry:
        channels, height, width = data_config["input_size"]
        face_crop = data_config.get("face_crop")
        return cls(int(channels), int(height), int(width), str(data_config.get("interpolation", "bicubic")),
                   float(data_config.get("crop_pct", 1.0) or 1.0), str(data_config.get("crop_mode", "center")),
                   None if face_crop is None else float(face_crop))

    def data_config(self) -> dict:
        """A data config with this geometry (and identity normalisation)."""
        return {"input_size": [self.channels, self.height, self.width], "mean": [0.0] * self.channels,
                "std": [1.0] * self.channels, "interpolation": self.interpolation, "crop_pct": self.crop_pct,
                "crop_mode": self.crop_mode, **({} if self.face_crop is None else {"face_crop": self.face_crop})}


@dataclass
class DecodedImages:
    """uint8 images [N, C, H, W] in manifest order, with a status per image ("ok" or the reason it failed)."""

    images: np.ndarray
    status: list[str]
    key: str
    path: Path | None = None  # the .npy file when memory-mapped

    @property
    def ok(self) -> np.ndarray:
        return np.array([s == "ok" for s in self.status], dtype=bool)

    @property
    def failures(self) -> dict[int, str]:
        return {i: s for i, s in enumerate(self.status) if s != "ok"}


def default_cache_dir() -> Path:
    """$UGN_CACHE_DIR, else ~/.cache/unifiedgender/decoded."""
    return Path(os.environ.get("UGN_CACHE_DIR", Path.home() / ".cache" / "unifiedgender" / "decoded"))


def cache_key(paths: Sequence[str], geometry: Geometry) -> str:
    """A digest of the files (path, byte size, mtime) and the geometry."""
    digest = hashlib.sha256(f"{CACHE_FORMAT}|{geometry}".encode())
    for path in paths:
        try:
            st = os.stat(path)
            digest.update(f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{os.path.abspath(path)}|missing\n".encode())
    return digest.hexdigest()[:32]


@functools.lru_cache(maxsize=8)
def _resize_and_crop(geometry: Geometry):
    """The geometric steps (resize, centre crop) of the evaluation transform for this geometry."""
    from torchvision import transforms as T

    from unifiedgender.data.transforms import build_eval_transform

    return T.Compose(build_eval_transform(geometry.data_config()).pipeline.transforms[:2])


def decode_image(path: str, geometry: Geometry) -> np.ndarray:
    """One image -> uint8 [C, H, W] through the eval transform's face framing, resize and crop; ImageReadError if
    unreadable."""
    from unifiedgender.data.transforms import face_framing

    img = load_image(path, "L" if geometry.channels == 1 else "RGB")
    frame = face_framing(geometry.data_config())
    if frame is not None:
        img = frame(img)
    arr = np.asarray(_resize_and_crop(geometry)(img), dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _fill(out: np.ndarray, paths: Sequence[str], geometry: Geometry, workers: int,
          progress: Callable[[int], None] | None) -> list[str]:
    status = ["ok"] * len(paths)

    def work(i: int) -> None:
        try:
            out[i] = decode_image(paths[i], geometry)
        except ImageReadError as exc:
            status[i] = str(exc)
            out[i] = 0
        if progress is not None:
            progress(1)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(work, range(len(paths))))
    return status


def build_cache(
    paths: Sequence[str], geometry: Geometry, *, mode: str = "auto", cache_dir: str | os.PathLike[str] | None = None,
    workers: int = 4, memory_limit: int = DEFAULT_MEMORY_LIMIT, progress: Callable[[int], None] | None = None,
) -> DecodedImages:
    """Decode `paths` once (threads); memory mode returns an array, disk mode a read-only memmap reused by key."""
    if mode not in CACHE_MODES:
        raise ValueError(f"cache mode must be one of {CACHE_MODES}")
    paths = [str(p) for p in paths]
    shape = (len(paths), geometry.channels, geometry.height, geometry.width)
    key = cache_key(paths, geometry)
    if mode == "auto":
        mode = "disk" if math.prod(shape) > memory_limit else "memory"
    if mode == "memory":
        images = np.zeros(shape, dtype=np.uint8)
        return DecodedImages(images, _fill(images, paths, geometry, workers, progress), key)
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    npy, meta = folder / f"{key}.npy", folder / f"{key}.json"
    from filelock import FileLock

    with FileLock(str(folder / f"{key}.lock")):
        if not (npy.is_file() and meta.is_file()):
            with atomic_path(npy) as tmp:
                arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
                status = _fill(arr, paths, geometry, workers, progress)
                arr.flush()
                del arr
            with atomic_write(meta) as handle:
                json.dump({"format": CACHE_FORMAT, "geometry": geometry.__dict__, "paths": paths, "status": status}, handle)
        elif progress is not None:
            progress(len(paths))
    status = json.loads(meta.read_text())["status"]
    return DecodedImages(np.load(npy, mmap_mode="r"), status, key, npy)
