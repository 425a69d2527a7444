"""Freezing policies Z0-Z3 (unifiedgender.models.freezing) on timm and torchvision backbones."""

from __future__ import annotations

import pytest
import torch

from unifiedgender.errors import UserError
from unifiedgender.models import apply_freezing, create_model, freeze_norm_statistics
from unifiedgender.models.freezing import parameter_layers, stage_groups

TINY = "test_resnet.r160_in1k"


def _frozen(model: torch.nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if not p.requires_grad}


def test_z0_trains_everything_and_z1_only_the_heads():
    model = create_model("mag", TINY, pretrained="none")
    counts = apply_freezing(model, "Z1")
    assert _frozen(model) == {f"backbone.{n}" for n, _ in model.backbone.named_parameters()}
    assert counts["frozen"] == sum(p.numel() for p in model.backbone.parameters())
    assert counts["trainable"] == sum(p.numel() for n, p in model.named_parameters() if not n.startswith("backbone."))
    apply_freezing(model, "Z0")
    assert _frozen(model) == set()


def test_z2_freezes_the_stem_and_the_first_half_of_the_stages():
    model = create_model("classifier", TINY, pretrained="none")
    groups = stage_groups(model)
    assert len(groups) == 5  # stem + layer1..layer4
    apply_freezing(model, "Z2")
    frozen = {n.removeprefix("backbone.") for n in _frozen(model)}
    assert frozen == set(groups[0] + groups[1] + groups[2])
    assert all(n.startswith(("conv1", "bn1", "layer1.", "layer2.")) for n in frozen)


def test_z3_on_resnet50_leaves_exactly_stage_4_and_the_head_trainable():
    """The Keras seed's 'last 20 layers' of ResNet-50: the last 20 parameterised layers are exactly layer4."""
    model = create_model("resnet50_head", "resnet50", pretrained="none")  # Z3 is this architecture's default
    trainable_backbone = {n for n, p in model.backbone.named_parameters() if p.requires_grad}
    assert trainable_backbone == {n for n, _ in model.backbone.named_parameters() if n.startswith("layer4.")}
    assert all(p.requires_grad for p in model.head.parameters())
    assert len([name for name, _ in parameter_layers(model.backbone) if name.startswith("layer4.")]) == 20
    apply_freezing(model, "Z0")  # the run tag's code replaces the default
    assert _frozen(model) == set()


def test_z2_on_a_torchvision_backbone_uses_its_stage_table():
    model = create_model("classifier", "tv-resnet18", pretrained="none")
    apply_freezing(model, "Z2")
    frozen_tops = {n.split(".")[1] for n in _frozen(model)}
    assert frozen_tops == {"conv1", "bn1", "layer1", "layer2"}


def test_frozen_batchnorm_keeps_its_statistics_after_train():
    model = create_model("classifier", TINY, pretrained="none")
    apply_freezing(model, "Z1")
    model.train()
    switched = freeze_norm_statistics(model)
    norms = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert switched == len(norms) > 0 and not any(m.training for m in norms)
    before = norms[0].running_mean.clone()
    model(torch.randn(4, 3, 64, 64) * 5 + 3, torch.zeros(4, dtype=torch.long))
    assert torch.equal(norms[0].running_mean, before)


def test_unknown_freezing_code_is_refused():
    model = create_model("classifier", TINY, pretrained="none")
    with pytest.raises(UserError, match="unknown freezing code 'Z7'; valid codes: Z0, Z1, Z2, Z3"):
        apply_freezing(model, "Z7")
