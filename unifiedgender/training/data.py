"""The run's data: the train/val manifests read and checked, decoded once into the cache, batched by loaders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from unifiedgender.data.cache import DecodedImages, Geometry, build_cache
from unifiedgender.data.dataset import CachedBatches, make_loader
from unifiedgender.data.manifest import MODALITIES, gender_to_label, read_manifest
from unifiedgender.errors import UserError
from unifiedgender.runtime import Runtime
from unifiedgender.training.config import TrainConfig

LOADER_WORKERS = 2  # processes gathering batches from the decoded cache (at most)


@dataclass
class TrainingData:
    """Both splits decoded, with the loaders over their readable rows."""

    train_df: pd.DataFrame
    val_df: pd.DataFrame
    train_cache: DecodedImages
    val_cache: DecodedImages
    train_labels: np.ndarray  # 1 = male, every train_df row
    val_labels: np.ndarray
    train_ok: np.ndarray  # indices of the readable rows
    val_ok: np.ndarray
    train_loader: Any
    train_sampler: Any
    val_loader: Any

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """(path, reason) of every unreadable image of both splits."""
        return [(df.at[i, "path"], reason) for df, cache in ((self.train_df, self.train_cache), (self.val_df, self.val_cache))
                for i, reason in cache.failures.items()]


def read_split_manifests(cfg: TrainConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The train and val manifests, each holding both genders (else no balanced accuracy, no best checkpoint)."""
    frames = read_manifest(cfg.train), read_manifest(cfg.val)
    for path, df in zip((cfg.train, cfg.val), frames):
        genders = sorted(set(df["gender"]))
        if len(genders) < 2:
            raise UserError(f"{path}: every image is '{genders[0]}'; training and validation need both genders "
                            "(re-split with `ugn data split`, which stratifies by gender, or add subjects)")
    return frames


def decode_splits(cfg: TrainConfig, runtime: Runtime, data_config: dict[str, Any], train_df: pd.DataFrame,
                  val_df: pd.DataFrame, log: Callable[[str], None]) -> TrainingData:
    """Decode both splits into the cache (rows that cannot be read are left out) and build their loaders."""
    train_cache = _decode("train", list(train_df["path"]), cfg, runtime, data_config, log)
    val_cache = _decode("val", list(val_df["path"]), cfg, runtime, data_config, log)
    train_ok, val_ok = np.flatnonzero(train_cache.ok), np.flatnonzero(val_cache.ok)
    if len(train_ok) == 0 or len(val_ok) == 0:
        raise UserError(f"no readable images in {cfg.train if len(train_ok) == 0 else cfg.val}; see skipped_images.csv")
    train_labels, val_labels = gender_to_label(train_df["gender"]).to_numpy(), gender_to_label(val_df["gender"]).to_numpy()
    train_set = CachedBatches(train_cache.images, train_labels, _modality_index(train_df), _ages(train_df), train_ok)
    val_set = CachedBatches(val_cache.images, val_labels, _modality_index(val_df), _ages(val_df), val_ok)
    # Gathering cached rows is cheap: two loader processes keep a GPU fed. On the CPU the model needs every
    # core, so batches are gathered in the main process. --workers sets the decoding threads.
    loader_workers = 0 if runtime.device.type == "cpu" else min(cfg.workers, LOADER_WORKERS)
    common = dict(seed=cfg.seed, rank=runtime.rank, world_size=runtime.world_size, workers=loader_workers,
                  pin_memory=runtime.pin_memory)
    train_loader, train_sampler = make_loader(train_set, cfg.batch_size, shuffle=True, drop_last=True, **common)
    val_loader, _ = make_loader(val_set, cfg.batch_size, shuffle=False, **common)
    return TrainingData(train_df, val_df, train_cache, val_cache, train_labels, val_labels, train_ok, val_ok,
                        train_loader, train_sampler, val_loader)


def _decode(name: str, paths: list[str], cfg: TrainConfig, runtime: Runtime, data_config: dict[str, Any],
            log: Callable[[str], None]) -> DecodedImages:
    """Decode once into the cache; under DDP into one disk cache that every rank decodes a share of."""
    mode = cfg.cache
    if runtime.distributed and mode == "memory":
        log(f"--cache memory would decode and hold one copy per process ({runtime.world_size}); "
            "using the disk cache instead (one memory-mapped copy per node)")
    if runtime.distributed:
        mode = "disk"
    geometry = Geometry.from_data_config(data_config)
    decoded = build_cache(paths, geometry, mode=mode, cache_dir=cfg.cache_dir, workers=max(cfg.workers, 1),
                          coordinator=runtime)
    framed = "" if geometry.face_crop is None else ", framed on their faces"
    log(f"{name}: {len(paths)} images decoded at {geometry.height}x{geometry.width}{framed}"
        + (f" (cached in {decoded.path})" if decoded.path else " (in memory)"))
    return decoded


def _modality_index(df: pd.DataFrame) -> np.ndarray:
    return df["modality"].map(MODALITIES.index).to_numpy()


def _ages(df: pd.DataFrame) -> np.ndarray:
    if "age" not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df["age"], errors="coerce").to_numpy(dtype=float)
