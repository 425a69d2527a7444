"""The plain training loop: `train_one_epoch` and `evaluate` with explicit arguments.

Hardware stays behind the `Runtime` object (device moves, autocast, gradient scaling, DDP gathers):
nothing here calls `.cuda()`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from unifiedgender.runtime import Runtime
from unifiedgender.training.augment import DeviceAugment, Normalize
from unifiedgender.training.losses import TrainingLoss, mixed_loss


@dataclass
class EpochProgress:
    """Running sums of one training epoch; checkpointed with mid-epoch saves so a resume continues them."""

    step: int = 0
    loss_sum: float = 0.0
    part_sums: dict[str, float] = field(default_factory=dict)
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0

    def state_dict(self) -> dict:
        return asdict(self)


def train_one_epoch(
    model: nn.Module, loader, augment: DeviceAugment, criterion: TrainingLoss, optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler, runtime: Runtime, *, progress: EpochProgress | None = None,
    on_step: Callable[[EpochProgress, int], None] | None = None, grad_clip: float | None = None,
) -> dict[str, float]:
    """One pass over `loader` (skipping the `progress.step` batches already done); returns epoch means over all ranks."""
    from unifiedgender.models import freeze_norm_statistics

    model.train()
    freeze_norm_statistics(runtime.unwrap(model))  # frozen BatchNorm layers keep their running statistics
    progress = progress or EpochProgress()
    n_steps = len(loader)
    started = time.perf_counter()
    for step, batch in enumerate(loader):
        if step < progress.step:
            continue
        batch = runtime.to_device(batch)
        images, perm, lam = augment(batch["image"], batch["modality"])
        loss, parts, out = train_step(model, images, batch, criterion, optimizer, scaler, runtime, perm, lam, grad_clip)
        n = int(batch["label"].shape[0])
        progress.step = step + 1
        progress.loss_sum += float(loss.detach()) * n
        for k, v in parts.items():
            progress.part_sums[k] = progress.part_sums.get(k, 0.0) + v * n
        progress.correct += int(((out["logit"].detach() > 0).float() == batch["label"]).sum())
        progress.seen += n
        progress.seconds += time.perf_counter() - started
        started = time.perf_counter()
        if on_step is not None:
            on_step(progress, n_steps)
    return _reduce_epoch(progress, runtime)


def train_step(
    model: nn.Module, images: torch.Tensor, batch: dict[str, torch.Tensor], criterion: TrainingLoss,
    optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, runtime: Runtime,
    perm: torch.Tensor | None = None, lam: float = 1.0, grad_clip: float | None = None,
) -> tuple[torch.Tensor, dict[str, float], dict[str, torch.Tensor]]:
    """Forward (autocast), loss, backward (scaled), optional clipping, optimiser step on one prepared batch."""
    with runtime.autocast():
        out = model(images, batch["modality"])
    loss, parts = mixed_loss(criterion, out, batch, perm, lam)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss, parts, out


def _reduce_epoch(progress: EpochProgress, runtime: Runtime) -> dict[str, float]:
    """Sum the ranks' counts; means over every image trained this epoch."""
    names = sorted(progress.part_sums)
    local = [progress.loss_sum, progress.correct, progress.seen, *[progress.part_sums[k] for k in names]]
    rows = runtime.all_gather_object(local)
    totals = [sum(r[i] for r in rows) for i in range(len(local))]
    seconds = max(r for r in runtime.all_gather_object(progress.seconds))
    seen = max(totals[2], 1)
    result = {"train_loss": totals[0] / seen, "train_acc": totals[1] / seen, "train_images": totals[2],
              "train_seconds": seconds, "images_per_s": totals[2] / seconds if seconds > 0 else float("nan")}
    result.update({f"train_loss_{k}": totals[3 + i] / seen for i, k in enumerate(names)})
    return result


@dataclass
class EvalResult:
    """Validation outputs gathered from every rank, deduplicated and sorted by image index."""

    indices: np.ndarray
    logits: np.ndarray
    loss: float

    @property
    def probs(self) -> np.ndarray:
        """Uncalibrated P(male) = sigmoid(logit)."""
        from unifiedgender.decision import calibrated_probs

        return calibrated_probs(self.logits)


@torch.no_grad()
def evaluate(model: nn.Module, loader, normalize: Normalize, criterion: TrainingLoss, runtime: Runtime,
             expected: int) -> EvalResult:
    """Predict every image once: an all_gather of (index, logit) drops the DistributedSampler's padding."""
    model.eval()
    indices, logits, losses = [], [], []
    for batch in loader:
        batch = runtime.to_device(batch)
        with runtime.autocast():
            out = model(normalize(batch["image"]), batch["modality"])
        loss, _ = criterion(out, batch)
        indices.append(batch["index"].cpu())
        logits.append(out["logit"].float().reshape(-1).cpu())
        losses.append(torch.full((len(batch["index"]),), float(loss)))
    local = [torch.cat(t).numpy() if t else np.zeros(0) for t in (indices, logits, losses)]
    gathered = runtime.all_gather_object(local)
    idx = np.concatenate([g[0] for g in gathered]).astype(np.int64)
    logit = np.concatenate([g[1] for g in gathered])
    loss = np.concatenate([g[2] for g in gathered])
    idx, first = np.unique(idx, return_index=True)
    if len(idx) != expected:
        raise RuntimeError(f"validation gathered {len(idx)} distinct images from {runtime.world_size} ranks, expected {expected}")
    return EvalResult(idx, logit[first], float(loss[first].mean()) if len(first) else math.nan)


def binary_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, balanced accuracy and ROC-AUC (NaN with one class) via scikit-learn."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

    pred = (probs >= threshold).astype(int)
    labels = labels.astype(int)
    both = len(np.unique(labels)) == 2
    return {
        "acc": float(accuracy_score(labels, pred)),
        "balanced_acc": float(balanced_accuracy_score(labels, pred)) if both else float("nan"),
        "auc": float(roc_auc_score(labels, probs)) if both else float("nan"),
    }
