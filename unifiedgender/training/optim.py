"""The optimiser and the per-epoch LR schedule named by the run configuration."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from unifiedgender.training.config import OPTIMIZERS, TrainConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """cfg.optimizer over `params` with cfg.lr and cfg.weight_decay (SGD also cfg.momentum)."""
    extra = {"momentum": cfg.momentum} if cfg.optimizer == "sgd" else {}
    return getattr(torch.optim, OPTIMIZERS[cfg.optimizer])(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **extra)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Cosine annealing over the epochs (stepped per epoch); None for `plateau`, which a callback steps on the
    validation loss (training.callbacks.ReduceLROnPlateau)."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs) if cfg.scheduler == "cosine" else None
