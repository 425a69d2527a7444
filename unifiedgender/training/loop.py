"""The plain training loop: `train_one_epoch` and `validate` with explicit arguments.

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


READ_EVERY = 25  # training steps between reads of the running sums from the device (each read is a GPU sync)


@dataclass
class EpochProgress:
    """Running sums of one training epoch; checkpointed with mid-epoch saves so a resume continues them.

    Per-step figures (loss, loss parts, correct count) stay on the device as pending rows until `settle()`
    reads them all at once: the training loop settles every READ_EVERY steps and at the end of the epoch, a
    checkpoint (`state_dict`) whenever it is taken. Settling adds the rows one by one in step order, so the
    sums do not depend on how often it happens (a resumed run matches an uninterrupted one bit for bit).
    """

    step: int = 0
    loss_sum: float = 0.0
    part_sums: dict[str, float] = field(default_factory=dict)
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self._pending: list[tuple[int, torch.Tensor]] = []
        self._part_names: list[str] = []

    def add(self, n: int, loss: torch.Tensor, parts: dict[str, torch.Tensor], correct: torch.Tensor) -> None:
        """Queue one step's figures (device tensors, no host read)."""
        self._part_names = sorted(parts)
        row = torch.stack([loss.detach().float(), correct.float(), *[parts[k].float() for k in self._part_names]])
        self._pending.append((n, row))

    @property
    def images(self) -> int:
        """Images trained so far this epoch, settled or not."""
        return self.seen + sum(n for n, _ in self._pending)

    def settle(self) -> None:
        """Read the pending rows from the device (one sync) into the sums."""
        if not self._pending:
            return
        rows = torch.stack([row for _, row in self._pending]).tolist()
        for (n, _), (loss, correct, *parts) in zip(self._pending, rows):
            self.loss_sum += loss * n
            for name, value in zip(self._part_names, parts):
                self.part_sums[name] = self.part_sums.get(name, 0.0) + value * n
            self.correct += int(correct)
            self.seen += n
        self._pending = []

    def state_dict(self) -> dict:
        self.settle()
        return asdict(self)


def train_one_epoch(
    model: nn.Module, loader, augment: DeviceAugment, criterion: TrainingLoss, optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler, runtime: Runtime, *, progress: EpochProgress | None = None,
    on_step: Callable[[EpochProgress, int], None] | None = None, grad_clip: float | None = None,
    read_every: int = READ_EVERY,
) -> dict[str, float]:
    """One pass over `loader` (skipping the `progress.step` batches already done); returns epoch means over all ranks.

    Nothing in a step waits for the GPU: the running sums are read every `read_every` steps (see EpochProgress).
    """
    from unifiedgender.models import freeze_norm_statistics

    model.train()
    freeze_norm_statistics(runtime.unwrap(model))  # frozen BatchNorm layers keep their running statistics
    progress = progress or EpochProgress()
    n_steps = len(loader)
    started = time.perf_counter()
    for step, batch in enumerate(runtime.prefetch(loader)):  # the next batch's copy overlaps this step
        if step < progress.step:
            continue
        images, perm, lam = augment(batch["image"], batch["modality"])
        loss, parts, out = train_step(model, images, batch, criterion, optimizer, scaler, runtime, perm, lam, grad_clip)
        correct = ((out["logit"].detach() > 0).float() == batch["label"]).sum()
        progress.add(int(batch["label"].shape[0]), loss, parts, correct)
        progress.step = step + 1
        if progress.step % read_every == 0 or progress.step == n_steps:
            progress.settle()
        progress.seconds += time.perf_counter() - started
        started = time.perf_counter()
        if on_step is not None:
            on_step(progress, n_steps)
    progress.settle()
    return _reduce_epoch(progress, runtime)


def train_step(
    model: nn.Module, images: torch.Tensor, batch: dict[str, torch.Tensor], criterion: TrainingLoss,
    optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, runtime: Runtime,
    perm: torch.Tensor | None = None, lam: float = 1.0, grad_clip: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
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
def validate(model: nn.Module, loader, normalize: Normalize, criterion: TrainingLoss, runtime: Runtime,
             expected: int) -> EvalResult:
    """Predict every image once: an all_gather of (index, logit) drops the DistributedSampler's padding."""
    model.eval()
    indices, logits, losses = [], [], []
    for batch in loader:
        batch = runtime.to_device(batch)
        with runtime.autocast():
            out = model(normalize(batch["image"]), batch["modality"])
        loss, _ = criterion(out, batch)
        indices.append(batch["index"])
        logits.append(out["logit"].float().reshape(-1))
        losses.append(loss.detach().float().expand(len(batch["index"])))
    local = [torch.cat(t).cpu().numpy() if t else np.zeros(0) for t in (indices, logits, losses)]  # one read at the end
    gathered = runtime.all_gather_object(local)
    idx = np.concatenate([g[0] for g in gathered]).astype(np.int64)
    logit = np.concatenate([g[1] for g in gathered])
    loss = np.concatenate([g[2] for g in gathered])
    idx, first = np.unique(idx, return_index=True)
    if len(idx) != expected:
        raise RuntimeError(f"validation gathered {len(idx)} distinct images from {runtime.world_size} ranks, expected {expected}")
    return EvalResult(idx, logit[first], float(loss[first].mean()) if len(first) else math.nan)
