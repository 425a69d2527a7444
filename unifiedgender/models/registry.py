"""The architecture registry and `create_model`, the one way to build a model."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from unifiedgender.errors import UserError
from unifiedgender.models.backbones import create_backbone
from unifiedgender.models.freezing import apply_freezing


@dataclass(frozen=True)
class ArchSpec:
    """A registered architecture."""

    name: str
    cls: type[nn.Module]
    uses_flag: bool = False
    default_backbone: str | None = None
    builtin_backbone: str | None = None  # set for architectures that bring their own (e.g. simple_cnn)

    def kwarg_names(self) -> list[str]:
        """Keyword arguments the architecture accepts (besides backbone, num_features and flag)."""
        skip = {"self", "backbone", "num_features", "flag"}
        return [p for p in inspect.signature(self.cls.__init__).parameters if p not in skip]


ARCHITECTURES: dict[str, ArchSpec] = {}


def register_arch(
    name: str, *, uses_flag: bool = False, default_backbone: str | None = None, builtin_backbone: str | None = None
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding an architecture under `name`."""

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        ARCHITECTURES[name] = ArchSpec(name, cls, uses_flag, default_backbone, builtin_backbone)
        return cls

    return add


def list_archs() -> list[str]:
    """Registered architecture names."""
    _import_all()
    return sorted(ARCHITECTURES)


def get_arch(name: str) -> ArchSpec:
    """The spec of architecture `name`; UserError listing the valid names otherwise."""
    _import_all()
    if name not in ARCHITECTURES:
        raise UserError(f"unknown architecture '{name}'; use one of {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[name]


def create_model(
    arch: str,
    backbone: str | None = None,
    *,
    pretrained: str | os.PathLike[str] = "default",
    flag: bool = False,
    **arch_kwargs: Any,
) -> nn.Module:
    """Build architecture `arch` on `backbone` (timm name or tv-<name>) with its data config attached.

    pretrained: "default" (the backbone tag's ImageNet weights: local file, else download, else UserError),
    "none" (explicit random init) or a weights-file path. flag: append the modality flag (umcc F1 only).
    """
    spec = get_arch(arch)
    if flag and not spec.uses_flag:
        raise UserError(f"the modality flag (F1) applies to umcc only, not '{arch}'; use F0")
    accepted = spec.kwarg_names() + ([] if spec.builtin_backbone else ["in_chans"])
    unknown = [k for k in arch_kwargs if k not in accepted]
    if unknown:
        raise UserError(f"architecture '{arch}' has no option '{unknown[0]}'; options: {', '.join(accepted) or 'none'}")
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
    model.data_config = data_config
    model.spec = {"arch": arch, "backbone": backbone_name, "flag": bool(flag), "kwargs": dict(arch_kwargs)}
    model.weights_source = source
    model.backbone_groups = groups
    if model.default_freeze != "Z0":
        apply_freezing(model, model.default_freeze)
    return model


def _import_all() -> None:
    """Import the architecture modules so that they register themselves."""
    from unifiedgender.models import classifier, mag, multitask, resnet50_head, simple_cnn, umcc  # noqa: F401
