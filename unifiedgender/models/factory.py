"""`create_model`, the one way to build a model: a registered architecture on a backbone, with its data config."""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from unifiedgender.errors import UserError
from unifiedgender.models.backbones import create_backbone
from unifiedgender.models.freezing import apply_freezing
from unifiedgender.models.registry import get_arch


def create_model(
    arch: str,
    backbone: str | None = None,
    *,
    pretrained: str | os.PathLike[str] = "default",
    flag: bool = False,
    image_size: int | None = None,
    **arch_kwargs: Any,
) -> nn.Module:
    """Build architecture `arch` on `backbone` (timm name or tv-<name>) with its data config attached.

    pretrained: "default" (the backbone tag's ImageNet weights: local file, else download, else UserError),
    "none" (explicit random init) or a weights-file path. flag: append the modality flag (umcc F1 only).
    image_size: a square input size; architectures whose layers depend on it (simple_cnn) take it as an option
    (kept in `spec`), the others get it in their data config (which the checkpoint stores).
    """
    spec = get_arch(arch)
    if flag and not spec.uses_flag:
        raise UserError(f"the modality flag (F1) applies to umcc only, not '{arch}'; use F0")
    accepted = spec.kwarg_names() + ([] if spec.builtin_backbone else ["in_chans"])
    unknown = [k for k in arch_kwargs if k not in accepted]
    if unknown:
        raise UserError(f"architecture '{arch}' has no option '{unknown[0]}'; options: {', '.join(accepted) or 'none'}")
    sized = bool(image_size) and "image_size" in accepted
    if sized:
        arch_kwargs["image_size"] = image_size
    kwargs = dict(arch_kwargs)
    if spec.builtin_backbone:
        if backbone not in (None, "", spec.builtin_backbone):
            raise UserError(f"architecture '{arch}' has its own backbone; pass backbone '{spec.builtin_backbone}'")
        if str(pretrained) not in ("default", "none"):
            raise UserError(f"architecture '{arch}' has no pretrained weights to load; use --pretrained none")
        model = spec.cls(**kwargs)
        backbone_name, data_config, groups, source = spec.builtin_backbone, model.builtin_data_config(), [], "none"
    else:
        backbone = backbone or spec.default_backbone
        if not backbone:
            raise UserError(f"architecture '{arch}' needs a backbone, e.g. tf_efficientnetv2_s.in1k or tv-resnet18")
        built = create_backbone(backbone, pretrained, in_chans=int(kwargs.pop("in_chans", 3)))
        extra = {"flag": bool(flag)} if spec.uses_flag else {}
        model = spec.cls(built.module, built.num_features, **extra, **kwargs)
        backbone_name, data_config, groups, source = built.name, built.data_config, built.groups, built.weights
    if image_size and not sized:
        data_config = {**data_config, "input_size": [data_config["input_size"][0], image_size, image_size]}
    model.data_config = data_config
    model.spec = {"arch": arch, "backbone": backbone_name, "flag": bool(flag), "kwargs": dict(arch_kwargs)}
    model.weights_source = source
    model.backbone_groups = groups
    if model.default_freeze != "Z0":
        apply_freezing(model, model.default_freeze)
    return model
