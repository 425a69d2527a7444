"""Losses: heads return logits, losses live here.

`build_criterion` turns the tag's loss kind (unifiedgender.tags.LOSS_CODES: bce, focal, weighted_bce) into a `TrainingLoss` that
also adds MAG's modality term (lambda * CE(gate_logits, modality)) and the multitask age term when the
model outputs them. All label tensors may be soft (mixup/cutmix): see `mixed_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unifiedgender.data.ages import BUCKET_EDGES
from unifiedgender.errors import UserError
from unifiedgender.tags import LOSS_KINDS

IGNORE = -100


def focal_loss(logit: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float | None = None) -> torch.Tensor:
    """Mean binary focal loss (Lin et al. 2017); `alpha` weights the male (label 1) class, None = unweighted.

    With gamma = 0 and alpha None it equals binary cross-entropy.
    """
    ce = F.binary_cross_entropy_with_logits(logit, target, reduction="none")
    prob = torch.sigmoid(logit)
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = ce * (1 - p_t).pow(gamma) if gamma else ce
    if alpha is not None:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.mean()


def pos_weight_from_labels(labels: torch.Tensor | list[int]) -> float:
    """n_female / n_male: the BCE pos_weight that balances the two classes."""
    labels = torch.as_tensor(labels)
    n_pos = int((labels == 1).sum())
    n_neg = int((labels == 0).sum())
    if n_pos == 0 or n_neg == 0:
        raise UserError("weighted BCE (Lw) needs both genders in the training manifest; use Lb or add images")
    return n_neg / n_pos


@dataclass
class TrainingLoss:
    """Gender loss + optional MAG modality term + optional multitask age term, on the model's output dict."""

    kind: str = "bce"
    pos_weight: float | None = None
    gamma: float = 2.0
    alpha: float | None = None
    modality_lambda: float = 0.3
    age_weight: float = 1.0
    age_edges: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not self.age_edges:
            self.age_edges = BUCKET_EDGES
        if self.kind not in LOSS_KINDS:
            raise UserError(f"unknown loss '{self.kind}'; use one of {', '.join(LOSS_KINDS)}")
        self._constants: dict[tuple, torch.Tensor] = {}

    def _constant(self, values: float | tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
        """`values` as a tensor on `like`'s device, made once (a host-to-device copy per step would sync)."""
        key = (values, like.device, like.dtype)
        if key not in self._constants:
            self._constants[key] = torch.tensor(values, device=like.device, dtype=like.dtype)
        return self._constants[key]

    def gender(self, logit: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        logit, label = logit.float(), label.float()
        if self.kind == "focal":
            return focal_loss(logit, label, self.gamma, self.alpha)
        if self.kind == "weighted_bce":
            weight = self._constant(self.pos_weight if self.pos_weight is not None else 1.0, logit)
            return F.binary_cross_entropy_with_logits(logit, label, pos_weight=weight)
        return F.binary_cross_entropy_with_logits(logit, label)

    def modality(self, gate_logits: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        """CE between MAG's gate (hand=0, face=1) and the true modality; other modalities are ignored (0 when
        all are)."""
        target = torch.where(modality < gate_logits.shape[1], modality, torch.full_like(modality, IGNORE))
        return _mean_known(F.cross_entropy(gate_logits.float(), target, ignore_index=IGNORE, reduction="none"),
                           target != IGNORE)

    def age(self, age_logits: torch.Tensor, age: torch.Tensor) -> torch.Tensor:
        """CE over age buckets (K > 1) or L1 regression in years (K == 1); unknown ages (NaN) are ignored (0 when
        all are)."""
        known = ~torch.isnan(age)
        if age_logits.shape[1] == 1:
            return _mean_known((age_logits[:, 0].float() - torch.nan_to_num(age).float()).abs(), known)
        edges = self._constant(self.age_edges, age)
        bucket = torch.bucketize(torch.nan_to_num(age), edges).clamp_max(age_logits.shape[1] - 1)
        bucket = torch.where(known, bucket, torch.full_like(bucket, IGNORE))
        return _mean_known(F.cross_entropy(age_logits.float(), bucket, ignore_index=IGNORE, reduction="none"), known)

    def __call__(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total loss, {part: detached value}) for one batch; nothing is read back to the host (no GPU sync)."""
        parts = {"gender": self.gender(out["logit"], batch["label"])}
        if "gate_logits" in out and self.modality_lambda:
            parts["modality"] = self.modality_lambda * self.modality(out["gate_logits"], batch["modality"])
        if "age_logits" in out and self.age_weight:
            parts["age"] = self.age_weight * self.age(out["age_logits"], batch["age"])
        total = sum(parts.values())
        return total, {k: v.detach() for k, v in parts.items()}


def _mean_known(losses: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Mean of `losses` where `known`, 0 where nothing is known: without a data-dependent branch (no GPU sync),
    and still connected to the graph, so the parameters behind it always get a (zero) gradient."""
    losses = torch.where(known, losses, torch.zeros_like(losses))
    return losses.sum() / known.sum().clamp_min(1)


def mixed_loss(
    criterion: TrainingLoss, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
    perm: torch.Tensor | None, lam: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The mixup/cutmix criterion: lam * L(targets) + (1 - lam) * L(targets[perm]); plain L when perm is None."""
    loss, parts = criterion(out, batch)
    if perm is None:
        return loss, parts
    shuffled = {k: v[perm] for k, v in batch.items() if k in ("label", "modality", "age")}
    loss2, parts2 = criterion(out, {**batch, **shuffled})
    return lam * loss + (1 - lam) * loss2, {k: lam * v + (1 - lam) * parts2[k] for k, v in parts.items()}


def build_criterion(
    kind: str, train_labels: list[int] | torch.Tensor, *, gamma: float = 2.0, alpha: float | None = None,
    pos_weight: float | None = None, modality_lambda: float = 0.3, age_weight: float = 1.0,
) -> TrainingLoss:
    """The criterion for a loss kind (a tag's `loss_kind`); weighted BCE takes pos_weight from the class frequencies
    unless given."""
    if kind == "weighted_bce" and pos_weight is None:
        pos_weight = pos_weight_from_labels(train_labels)
    return TrainingLoss(kind, pos_weight, gamma, alpha, modality_lambda, age_weight)

