"""Losses: BCE, focal, weighted BCE, MAG modality term, multitask age term, mixup criterion."""

import math

import pytest
import torch
import torch.nn.functional as F

from unifiedgender.errors import UserError
from unifiedgender.training.losses import TrainingLoss, build_criterion, focal_loss, mixed_loss, pos_weight_from_labels


def _batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"logit": torch.randn(n, generator=g)}, {
        "label": torch.tensor([1, 0, 1, 1, 0, 0], dtype=torch.float32)[:n],
        "modality": torch.tensor([0, 1, 0, 1, 2, 1])[:n],
        "age": torch.tensor([1.0, 30.0, float("nan"), 70.0, 5.0, 18.0])[:n],
    }


def test_bce_equals_torch():
    out, batch = _batch()
    loss, parts = build_criterion("bce", batch["label"])(out, batch)
    assert torch.allclose(loss, F.binary_cross_entropy_with_logits(out["logit"], batch["label"]))
    assert set(parts) == {"gender"}


def test_focal_reduces_to_bce_and_downweights_easy_examples():
    out, batch = _batch()
    bce = F.binary_cross_entropy_with_logits(out["logit"], batch["label"])
    assert torch.allclose(focal_loss(out["logit"], batch["label"], gamma=0.0), bce)
    easy = torch.tensor([6.0]), torch.tensor([1.0])
    assert focal_loss(*easy, gamma=2.0) < 1e-3 * F.binary_cross_entropy_with_logits(*easy)
    # alpha weights the male class: alpha=1 ignores female examples entirely
    female_only = focal_loss(torch.tensor([0.3]), torch.tensor([0.0]), gamma=2.0, alpha=1.0)
    assert float(female_only) == 0.0


def test_weighted_bce_pos_weight_from_frequencies():
    labels = torch.tensor([1, 0, 0, 0])
    assert pos_weight_from_labels(labels) == 3.0
    crit = build_criterion("weighted_bce", labels)
    assert crit.pos_weight == 3.0
    out, batch = _batch()
    expected = F.binary_cross_entropy_with_logits(out["logit"], batch["label"], pos_weight=torch.tensor(3.0))
    assert torch.allclose(crit(out, batch)[0], expected)
    with pytest.raises(UserError, match="needs both genders"):
        build_criterion("weighted_bce", torch.tensor([1, 1]))


def test_unknown_loss_kind_refused():
    with pytest.raises(UserError, match="unknown loss 'x'; use one of bce, focal, weighted_bce"):
        build_criterion("x", [0, 1])


def test_mag_modality_term_uses_lambda_and_ignores_other_modalities():
    out, batch = _batch()
    gate = torch.randn(6, 2)
    crit = TrainingLoss("bce", modality_lambda=0.3)
    total, parts = crit({**out, "gate_logits": gate}, batch)
    keep = batch["modality"] < 2
    expected = 0.3 * F.cross_entropy(gate[keep], batch["modality"][keep])
    assert math.isclose(parts["modality"], float(expected), rel_tol=1e-5)
    assert math.isclose(float(total), parts["gender"] + parts["modality"], rel_tol=1e-5)


def test_multitask_age_buckets_ignore_unknown_ages():
    out, batch = _batch()
    age_logits = torch.randn(6, 8)
    crit = TrainingLoss("bce", age_weight=0.5)
    _, parts = crit({**out, "age_logits": age_logits}, batch)
    known = ~torch.isnan(batch["age"])
    buckets = torch.tensor([0, 4, 7, 1, 3])  # 1y, 30y, 70y, 5y, 18y
    expected = 0.5 * F.cross_entropy(age_logits[known], buckets)
    assert math.isclose(parts["age"], float(expected), rel_tol=1e-5)


def test_mixed_loss_is_convex_combination():
    out, batch = _batch()
    crit = TrainingLoss("bce")
    perm = torch.tensor([5, 4, 3, 2, 1, 0])
    mixed, _ = mixed_loss(crit, out, batch, perm, 0.7)
    a = F.binary_cross_entropy_with_logits(out["logit"], batch["label"])
    b = F.binary_cross_entropy_with_logits(out["logit"], batch["label"][perm])
    assert torch.allclose(mixed, 0.7 * a + 0.3 * b)
