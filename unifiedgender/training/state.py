"""The resumable training state stored in last.pt (`TrainState`) and the run's random state.

A resumed run continues exactly where the saved one stopped: optimiser, scheduler, gradient scaler, callbacks
(best value, patience, history), every random generator of every rank and, mid-epoch, the epoch's running
sums (training.loop.EpochProgress).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unifiedgender.errors import UserError
from unifiedgender.training.augment import DeviceAugment

TRAIN_STATE_FORMAT = "ugn-train-state/1"


@dataclass
class TrainState:
    """What last.pt's `resume` entry holds besides the weights."""

    epoch: int  # the epoch to continue (0-based); with `progress`, mid-epoch
    progress: dict[str, Any] | None  # EpochProgress.state_dict() of a mid-epoch save
    stopped: bool  # early stopping had already ended the run
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    scaler: dict[str, Any]
    callbacks: list[dict[str, Any]]
    rng: list[dict[str, Any]]  # rng_state() of every rank, in rank order
    world_size: int

    def as_dict(self) -> dict[str, Any]:
        return {"format": TRAIN_STATE_FORMAT, **asdict(self)}

    @classmethod
    def from_checkpoint(cls, payload: dict[str, Any], path: Path, world_size: int) -> TrainState:
        """The state of a last.pt payload; UserError when it holds none or was written by another number of ranks."""
        data = dict(payload.get("resume") or {})
        if data.pop("format", None) != TRAIN_STATE_FORMAT:
            raise UserError(f"{path}: not a ugn training state; cannot resume from it")
        if data["world_size"] != world_size:
            raise UserError(f"{path} was written by {data['world_size']} process(es); resume with the same number")
        return cls(**data)

    def restore(self, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: torch.amp.GradScaler,
                callbacks: list[Any], augment: DeviceAugment, rank: int, epochs: int) -> None:
        """Load every part back; the cosine schedule stretches to `epochs` (--epochs may be given again)."""
        optimizer.load_state_dict(self.optimizer)
        if scheduler is not None and self.scheduler:
            scheduler.load_state_dict(self.scheduler)
            scheduler.T_max = epochs
        scaler.load_state_dict(self.scaler)
        for callback, state in zip(callbacks, self.callbacks):
            callback.load_state_dict(state)
        set_rng_state(self.rng[rank], augment)


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed python, numpy and torch with seed + rank: under DDP each rank draws its own dropout masks and
    augmentation ops (DDP copies rank 0's initial weights to all ranks); rank 0 and single runs use `seed`."""
    seed = seed + rank
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(augment: DeviceAugment) -> dict[str, Any]:
    """Every random generator the run uses (python, numpy, torch, augmentation), as checkpointable data."""
    from unifiedgender.checkpoint import capture_rng_state

    return {**capture_rng_state(), "augment": augment.state_dict()}


def set_rng_state(state: dict[str, Any], augment: DeviceAugment) -> None:
    from unifiedgender.checkpoint import restore_rng_state

    restore_rng_state(state)
    augment.load_state_dict(state["augment"])
