"""Decode each image once into a uint8 array at training resolution, in memory or as a memory-mapped .npy.

The geometry is the evaluation preprocessing of the backbone's data config (resize to size / crop_pct,
centre crop), so validation during training sees exactly what `ugn evaluate` sees; training augmentation
then runs on the device from these arrays. Disk caches are keyed by the image files (path, size, mtime)
and the geometry, so a second run over the same manifest reuses them. An unreadable image is recorded with
its reason in `status` (its slot stays zero) and never stops the build.

A disk cache's file is allocated in full before decoding (a clear error when the folder lacks the space,
instead of a SIGBUS from a sparse memory map on a full disk). Under DDP (`coordinator`), rank 0 computes the
key and allocates the file, every rank decodes its own share of the images into it, and rank 0 publishes it;
the ranks wait for each other through the coordinator's CPU barrier, not a GPU collective.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from unifiedgender.data.images import ImageReadError, load_image
from unifiedgender.errors import UserError
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
    preprocess: str = ""  # image-to-image steps before the resize (unifiedgender.fingerprints.preprocess)
    face_crop: float | None = None  # margin of the canonical face framing applied before resizing; None: off

    @classmethod
    def from_data_config(cls, data_config: dict) -> Geometry:
        channels, height, width = data_config["input_size"]
        face_crop = data_config.get("face_crop")
        return cls(int(channels), int(height), int(width), str(data_config.get("interpolation", "bicubic")),
                   float(data_config.get("crop_pct", 1.0) or 1.0), str(data_config.get("crop_mode", "center")),
                   str(data_config.get("preprocess") or ""), None if face_crop is None else float(face_crop))

    def data_config(self) -> dict:
        """A data config with this geometry (and identity normalisation)."""
        return {"input_size": [self.channels, self.height, self.width], "mean": [0.0] * self.channels,
                "std": [1.0] * self.channels, "interpolation": self.interpolation, "crop_pct": self.crop_pct,
                "crop_mode": self.crop_mode, "preprocess": self.preprocess,
                **({} if self.face_crop is None else {"face_crop": self.face_crop})}


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


class Coordinator(Protocol):
    """The processes building one cache together (the training Runtime under DDP)."""

    rank: int
    world_size: int

    def cpu_barrier(self) -> None: ...  # every rank got here (no GPU-collective timeout while others decode)

    def cpu_broadcast(self, obj: Any) -> Any: ...  # rank 0's obj on every rank

    def cpu_gather(self, obj: Any) -> list[Any]: ...  # every rank's obj, in rank order


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
def _eval_transform(geometry: Geometry):
    """The evaluation transform for this geometry (its uint8 path: framing, preprocessing, resize, centre crop)."""
    from unifiedgender.data.transforms import build_eval_transform

    return build_eval_transform(geometry.data_config())


def decode_image(path: str, geometry: Geometry) -> np.ndarray:
    """One image -> uint8 [C, H, W] through the eval transform's face framing, preprocessing, resize and crop
    (EvalTransform.uint8); ImageReadError if unreadable."""
    img = load_image(path, "L" if geometry.channels == 1 else "RGB")
    return _eval_transform(geometry).uint8(img).numpy()


def _fill(out: np.ndarray, paths: Sequence[str], geometry: Geometry, workers: int,
          progress: Callable[[int], None] | None, indices: Sequence[int] | None = None) -> dict[int, str]:
    """Decode `indices` (default all) into `out`; returns {index: reason} for the unreadable ones."""
    failed: dict[int, str] = {}

    def work(i: int) -> None:
        try:
            out[i] = decode_image(paths[i], geometry)
        except ImageReadError as exc:
            failed[i] = str(exc)
            out[i] = 0
        if progress is not None:
            progress(1)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(work, range(len(paths)) if indices is None else indices))
    return failed


def _statuses(n: int, failed: dict[int, str]) -> list[str]:
    return [failed.get(i, "ok") for i in range(n)]


def allocate_npy(path: Path, shape: tuple[int, ...]) -> None:
    """Create a uint8 .npy of `shape` with every block reserved on disk; UserError naming the folder when it
    lacks the space (a sparse file on a full disk would kill the process with SIGBUS while decoding)."""
    folder = path.parent
    needed = math.prod(shape) + 4096  # data + .npy header
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise _no_space(folder, needed, free)
    np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape).flush()
    with open(path, "r+b") as handle:
        try:
            os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                path.unlink(missing_ok=True)
                raise _no_space(folder, needed, shutil.disk_usage(folder).free) from exc
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # file systems that cannot reserve: go on
                raise


def _no_space(folder: Path, needed: int, free: int) -> UserError:
    return UserError(
        f"decoded-image cache needs {needed / 2**30:.2f} GiB in {folder} but {free / 2**30:.2f} GiB is free (or "
        "the quota is reached); point --cache-dir or UGN_CACHE_DIR at scratch space, or use --cache memory"
    )


def build_cache(
    paths: Sequence[str], geometry: Geometry, *, mode: str = "auto", cache_dir: str | os.PathLike[str] | None = None,
    workers: int = 4, memory_limit: int = DEFAULT_MEMORY_LIMIT, progress: Callable[[int], None] | None = None,
    coordinator: Coordinator | None = None,
) -> DecodedImages:
    """Decode `paths` once (threads); memory mode returns an array, disk mode a read-only memmap reused by key.

    With a `coordinator` of several ranks (DDP), every rank calls this with the same arguments and gets the
    same disk cache; each decodes 1/world_size of the images (memory mode is for one process).
    """
    if mode not in CACHE_MODES:
        raise ValueError(f"cache mode must be one of {CACHE_MODES}")
    shared = coordinator is not None and coordinator.world_size > 1
    paths = [str(p) for p in paths]
    shape = (len(paths), geometry.channels, geometry.height, geometry.width)
    if mode == "auto":
        mode = "disk" if shared or math.prod(shape) > memory_limit else "memory"
    if mode == "memory":
        if shared:
            raise ValueError("a memory cache is built by one process; use mode='disk' under DDP")
        images = np.zeros(shape, dtype=np.uint8)
        return DecodedImages(images, _statuses(len(paths), _fill(images, paths, geometry, workers, progress)),
                             cache_key(paths, geometry))
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    if shared:
        return _build_shared(paths, geometry, shape, folder, workers, progress, coordinator)
    folder.mkdir(parents=True, exist_ok=True)
    key = cache_key(paths, geometry)
    npy, meta = folder / f"{key}.npy", folder / f"{key}.json"
    from filelock import FileLock

    with FileLock(str(folder / f"{key}.lock")):
        if not (npy.is_file() and meta.is_file()):
            with atomic_path(npy) as tmp:
                allocate_npy(tmp, shape)
                arr = np.load(tmp, mmap_mode="r+")
                failed = _fill(arr, paths, geometry, workers, progress)
                arr.flush()
                del arr
            _write_meta(meta, geometry, paths, _statuses(len(paths), failed))
        elif progress is not None:
            progress(len(paths))
    status = json.loads(meta.read_text())["status"]
    return DecodedImages(np.load(npy, mmap_mode="r"), status, key, npy)


def _write_meta(meta: Path, geometry: Geometry, paths: list[str], status: list[str]) -> None:
    with atomic_write(meta) as handle:
        json.dump({"format": CACHE_FORMAT, "geometry": geometry.__dict__, "paths": paths, "status": status}, handle)


def _build_shared(paths: list[str], geometry: Geometry, shape: tuple[int, ...], folder: Path, workers: int,
                  progress: Callable[[int], None] | None, coord: Coordinator) -> DecodedImages:
    """The DDP build: rank 0 keys, locks and allocates; every rank decodes its share; rank 0 publishes."""
    from filelock import FileLock

    lock = None
    ready: Any = None
    if coord.rank == 0:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            key = cache_key(paths, geometry)  # stats every file once, on rank 0 only
            lock = FileLock(str(folder / f"{key}.lock"))
            lock.acquire()
            npy, meta = folder / f"{key}.npy", folder / f"{key}.json"
            built = npy.is_file() and meta.is_file()
            if not built:
                allocate_npy(folder / f"{key}.npy.partial", shape)
            ready = (key, built)
        except UserError as exc:
            ready = exc
    ready = coord.cpu_broadcast(ready)
    if isinstance(ready, UserError):  # every rank stops with rank 0's message
        if lock is not None:
            lock.release()
        raise ready
    key, built = ready
    npy, meta, partial = folder / f"{key}.npy", folder / f"{key}.json", folder / f"{key}.npy.partial"
    try:
        if not built:
            arr = np.load(partial, mmap_mode="r+")
            failed = _fill(arr, paths, geometry, workers, progress, range(coord.rank, len(paths), coord.world_size))
            arr.flush()
            del arr
            everyone = coord.cpu_gather(failed)
            if coord.rank == 0:
                _write_meta(meta, geometry, paths, _statuses(len(paths), {i: r for f in everyone for i, r in f.items()}))
                os.replace(partial, npy)
        elif progress is not None:
            progress(len(paths))
        coord.cpu_barrier()
    finally:
        if lock is not None:
            lock.release()
    status = json.loads(meta.read_text())["status"]
    return DecodedImages(np.load(npy, mmap_mode="r"), status, key, npy)
