"""Freezing policies selected by the run tag's Z code (exact meanings in docs/tags.md).

Z0: nothing frozen. Z1: the whole backbone frozen (linear probe). Z2: the stem and the first half (rounded
down) of the backbone's stages frozen. Z3: only the last `trainable_layers` (20) layers of the backbone train.
Heads are always trainable. A "stage" is one of the backbone's parameter groups after the stem (timm's
`group_matcher(coarse=True)`; for torchvision the table in docs/models.md). A "layer" is a module that owns
parameters directly (Conv, BatchNorm, Linear, LayerNorm, ...), counted in `named_modules()` order.
"""

from __future__ import annotations

from torch import nn

from unifiedgender.errors import UserError
from unifiedgender.tags import FREEZE_CODES

DEFAULT_TRAINABLE_LAYERS = 20
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


def parameter_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) for every module owning parameters directly, in registration order."""
    return [(name, m) for name, m in module.named_modules() if any(True for _ in m.parameters(recurse=False))]


def stage_groups(model: nn.Module) -> list[list[str]]:
    """Backbone parameter names grouped as [stem, stage 1, ..., stage N]."""
    groups = [g for g in getattr(model, "backbone_groups", []) if g]
    if groups:
        return groups
    children = [(n, c) for n, c in model.backbone.named_children() if any(True for _ in c.parameters())]
    return [[f"{n}.{p}" for p, _ in c.named_parameters()] for n, c in children]


def apply_freezing(model: nn.Module, code: str, *, trainable_layers: int = DEFAULT_TRAINABLE_LAYERS) -> dict[str, int]:
    """Reset every parameter to trainable, then freeze backbone parameters per `code`.

    Returns {"trainable": n, "frozen": n} parameter-element counts.
    """
    if code not in FREEZE_CODES:
        raise UserError(f"unknown freezing code '{code}'; valid codes: {', '.join(FREEZE_CODES)}")
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    backbone = model.backbone
    if code == "Z1":
        backbone.requires_grad_(False)
    elif code == "Z2":
        groups = stage_groups(model)
        frozen = {name for group in groups[: 1 + (len(groups) - 1) // 2] for name in group}
        for name, parameter in backbone.named_parameters():
            if name in frozen:
                parameter.requires_grad_(False)
    elif code == "Z3":
        if trainable_layers < 0:
            raise UserError(f"trainable_layers {trainable_layers} must be >= 0")
        layers = parameter_layers(backbone)
        keep = len(layers) - trainable_layers
        for _, layer in layers[: max(keep, 0)]:
            for parameter in layer.parameters(recurse=False):
                parameter.requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen_count = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return {"trainable": trainable, "frozen": frozen_count}


def freeze_norm_statistics(model: nn.Module) -> int:
    """Put normalisation layers whose parameters are all frozen into eval mode (call after `model.train()`).

    Frozen BatchNorm layers then keep their running statistics, as Keras does for frozen layers.
    Returns how many layers were switched.
    """
    switched = 0
    for module in model.modules():
        params = list(module.parameters(recurse=False))
        if isinstance(module, _NORMS) and params and not any(p.requires_grad for p in params):
            module.eval()
            switched += 1
    return switched
