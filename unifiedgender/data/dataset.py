"""Batches from the decoded cache: one `__getitem__` per batch (a list of positions), sharded like DDP."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler


class CachedBatches(Dataset):
    """Rows `indices` of a uint8 image array with their labels; item = a dict of batch tensors (images stay uint8)."""

    def __init__(self, images: np.ndarray, labels: Sequence[int], modality: Sequence[int],
                 age: Sequence[float] | None = None, indices: Sequence[int] | None = None) -> None:
        self.images = images
        self.labels = np.asarray(labels, dtype=np.float32)
        self.modality = np.asarray(modality, dtype=np.int64)
        self.age = np.asarray(age if age is not None else np.full(len(self.labels), np.nan), dtype=np.float32)
        self.indices = np.asarray(indices if indices is not None else np.arange(len(self.labels)), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, positions: Sequence[int]) -> dict[str, torch.Tensor]:
        idx = self.indices[np.asarray(positions, dtype=np.int64)]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(self.images[idx])),
            "label": torch.from_numpy(self.labels[idx]),
            "modality": torch.from_numpy(self.modality[idx]),
            "age": torch.from_numpy(self.age[idx]),
            "index": torch.from_numpy(idx),
        }


def make_loader(dataset: CachedBatches, batch_size: int, *, shuffle: bool, seed: int, rank: int = 0,
                world_size: int = 1, drop_last: bool = False, workers: int = 0,
                pin_memory: bool = False) -> tuple[DataLoader, DistributedSampler]:
    """A loader of whole batches and its sampler (call `sampler.set_epoch(epoch)` before each epoch).

    The order depends only on (seed, epoch), so a resumed run replays it. Each rank gets its shard; for
    evaluation the sampler pads the last shard by repeating indices, which `evaluate` removes again.
    """
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed)
    batches = BatchSampler(sampler, batch_size, drop_last=drop_last and len(sampler) > batch_size)
    # The loader's own generator: creating an iterator would otherwise draw from the global torch RNG, which
    # dropout uses too, and a resumed run would then drift from an uninterrupted one.
    loader = DataLoader(dataset, sampler=batches, batch_size=None, num_workers=workers, pin_memory=pin_memory,
                        persistent_workers=workers > 0, generator=torch.Generator().manual_seed(seed))
    return loader, sampler
