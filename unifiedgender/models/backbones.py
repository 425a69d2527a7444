"""One factory for feature-extractor backbones: any timm model, a torchvision model named `tv-<name>`, or
dlib's face-recognition network `dlib-face_resnet.v1` (models/dlib_face.py).

A backbone maps images [B,C,H,W] to pooled features [B, num_features]. Names carry the pretrained tag:
`tf_efficientnetv2_s.in1k` (timm), `tv-mobilenet_v2.imagenet1k_v1` (torchvision weights enum, lower case).
`pretrained`: "default" (the tag's ImageNet weights, found locally or downloaded), "none" (explicit random
init) or a path to a weights file. The data config comes from the pretrained config, never hard-coded.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from unifiedgender.errors import UserError
from unifiedgender.models import weights as W

TORCHVISION_PREFIX = "tv-"
DLIB_FACE_BACKBONE = "dlib-face_resnet.v1"
# torchvision families: attribute(s) holding the ImageNet head, stem modules, stage container(s)
_TV_FAMILIES: dict[str, dict[str, Any]] = {
    "resnet": {"heads": ("fc",), "stem": ("conv1", "bn1"), "stages": ("layer1", "layer2", "layer3", "layer4")},
    "features": {"heads": ("classifier",), "stem": ("features.0",), "stages": "features"},
    "inception": {
        "heads": ("fc", "AuxLogits"),
        "stem": ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"),
        "stages": ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                   "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"),
    },
    "vit": {"heads": ("heads",), "stem": ("conv_proj", "class_token", "encoder.pos_embedding"), "stages": "vit"},
}


def _tv_family(name: str) -> str | None:
    if name.startswith(("resnet", "resnext", "wide_resnet")):
        return "resnet"
    if name.startswith(("mobilenet_v2", "mobilenet_v3", "efficientnet")):
        return "features"
    if name == "inception_v3":
        return "inception"
    if name.startswith("vit_"):
        return "vit"
    return None


@dataclass
class Backbone:
    """A built backbone and what travels with it."""

    module: nn.Module
    num_features: int
    data_config: dict[str, Any]
    name: str  # canonical: includes the pretrained tag actually meant
    weights: str  # where the initial weights came from: "none", a file path, or "download"
    groups: list[list[str]] = field(default_factory=list)  # parameter names: [stem, stage 1, ..., stage N]


def is_torchvision(name: str) -> bool:
    """True for `tv-<name>` backbones."""
    return name.startswith(TORCHVISION_PREFIX)


def create_backbone(name: str, pretrained: str | os.PathLike[str] = "default", *, in_chans: int = 3) -> Backbone:
    """Build the backbone `name` with pooled-feature output; see the module docstring for `pretrained`."""
    if not isinstance(pretrained, (str, os.PathLike)):
        raise UserError(f"pretrained must be 'default', 'none' or a file path, not {pretrained!r}")
    pretrained = str(pretrained)
    if pretrained not in ("default", "none") and not Path(pretrained).is_file():
        raise UserError(f"weights file not found: {pretrained}; pass an existing file, 'default' or 'none'")
    if name.startswith("dlib-"):
        return _dlib_face_backbone(name, pretrained, in_chans)
    if is_torchvision(name):
        if in_chans != 3:
            raise UserError(f"backbone '{name}': torchvision backbones take 3 channels; use a timm backbone for in_chans={in_chans}")
        return _torchvision_backbone(name, pretrained)
    return _timm_backbone(name, pretrained, in_chans)


# ---------------------------------------------------------------- timm


def _timm_backbone(name: str, pretrained: str, in_chans: int) -> Backbone:
    import timm
    from timm.models import group_parameters

    if not timm.is_model(name.split(".", 1)[0]):
        close = timm.list_models(f"*{name.split('.', 1)[0][:6]}*")[:8]
        raise UserError(
            f"unknown backbone '{name}'; use a timm model name (e.g. resnet18.a1_in1k"
            f"{', ' + ', '.join(close) if close else ''}) or a torchvision model as tv-<name>"
        )
    try:
        module = timm.create_model(name, pretrained=False, num_classes=0, global_pool="avg", in_chans=in_chans)
    except RuntimeError as exc:  # e.g. an unknown pretrained tag
        raise UserError(f"backbone '{name}': {exc}; list tags with timm.list_pretrained('{name.split('.', 1)[0]}*')") from exc
    cfg = module.pretrained_cfg
    canonical = f"{cfg['architecture']}.{cfg['tag']}" if cfg.get("tag") else cfg["architecture"]
    source = "none"
    if pretrained != "none":
        path = Path(pretrained) if pretrained != "default" else _find_timm_file(module, canonical)
        if path is not None:
            _load_timm_file(module, path, in_chans, canonical)
            source = str(path)
        else:
            module = _download_timm(name, module, canonical, in_chans)
            source = "download"
    data_config = _timm_data_config(module, in_chans)
    groups = []
    if hasattr(module, "group_matcher"):
        groups = [list(names) for names in group_parameters(module, module.group_matcher(coarse=True)).values()]
    # With num_classes=0 timm returns the pooled head output: head_hidden_size where a model has a
    # post-pool head (MobileNetV3: 1024), else num_features.
    pooled = getattr(module, "head_hidden_size", None) or module.num_features
    return Backbone(module, int(pooled), data_config, canonical, source, groups)


def _timm_candidate_names(module: nn.Module, canonical: str) -> tuple[list[str], list[str]]:
    cfg = module.pretrained_cfg
    names = [f"{canonical}.safetensors", f"{canonical}.pth", f"{canonical}.bin"]
    if cfg.get("url"):
        names.append(os.path.basename(urlparse(cfg["url"]).path))
    prefixes = [W.LITE_FILE_PREFIX[cfg["architecture"]]] if cfg["architecture"] in W.LITE_FILE_PREFIX and cfg.get("tag") == "in1k" else []
    return names, prefixes


def _find_timm_file(module: nn.Module, canonical: str) -> Path | None:
    names, prefixes = _timm_candidate_names(module, canonical)
    found = W.find_local_file(names, prefixes) or W.hf_cached_file(module.pretrained_cfg.get("hf_hub_id"))
    if found is None and module.pretrained_cfg.get("tag") == "in1k":
        found = W.lite_package_file(module.pretrained_cfg["architecture"])
    return found


def _load_timm_file(module: nn.Module, path: Path, in_chans: int, canonical: str) -> None:
    from timm.models import adapt_input_conv

    state_dict = W.read_weights_file(path)
    if "_conv_stem.weight" in state_dict:
        state_dict = W.efficientnet_pytorch_to_timm(state_dict, module)
    state_dict = _backbone_part(state_dict)
    classifiers = module.pretrained_cfg.get("classifier") or ()
    for head in (classifiers,) if isinstance(classifiers, str) else classifiers:
        state_dict = {k: v for k, v in state_dict.items() if not (k == head or k.startswith(head + "."))}
    first_conv = module.pretrained_cfg.get("first_conv")
    if in_chans != 3 and isinstance(first_conv, str) and f"{first_conv}.weight" in state_dict:
        state_dict[f"{first_conv}.weight"] = adapt_input_conv(in_chans, state_dict[f"{first_conv}.weight"])
    source = f"{path} (as backbone '{canonical}')"
    try:
        W.load_strict(module, state_dict, source)
    except UserError as mismatch:  # maybe the original (non-timm) layout: timm's own converter may map it
        filter_fn = getattr(sys.modules[type(module).__module__], "checkpoint_filter_fn", None)
        if filter_fn is None:
            raise
        try:
            W.load_strict(module, filter_fn(dict(state_dict), module), source)
        except Exception:
            raise mismatch from None


def _backbone_part(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The `backbone.*` keys of a ugn/UMCC/MAG checkpoint (prefix removed), or the state dict as is."""
    inner = {k[len("backbone.") :]: v for k, v in state_dict.items() if k.startswith("backbone.")}
    return inner or state_dict


def _download_timm(name: str, module: nn.Module, canonical: str, in_chans: int) -> nn.Module:
    """timm's own download (Hugging Face hub or URL), tried only when the host answers."""
    import timm

    cfg = module.pretrained_cfg
    names, _ = _timm_candidate_names(module, canonical)
    if not cfg.get("hf_hub_id") and not cfg.get("url"):
        raise UserError(f"timm has no pretrained weights for '{canonical}'; pass --weights PATH or --pretrained none")
    hosts = (["huggingface.co"] if cfg.get("hf_hub_id") else []) + ([urlparse(cfg["url"]).hostname] if cfg.get("url") else [])
    if not any(W.network_available(h) for h in hosts if h):
        raise W.no_weights_error(canonical, names)
    try:
        return timm.create_model(name, pretrained=True, num_classes=0, global_pool="avg", in_chans=in_chans)
    except Exception as exc:  # network and hub errors come in many types
        raise UserError(f"downloading weights for '{canonical}' failed ({type(exc).__name__}: {str(exc)[:160]}); "
                        "retry, or pass a local file with --weights PATH") from exc


def _timm_data_config(module: nn.Module, in_chans: int) -> dict[str, Any]:
    from timm.data import resolve_model_data_config

    cfg = resolve_model_data_config(module)
    mean, std = list(cfg["mean"]), list(cfg["std"])
    if in_chans != len(mean):
        mean, std = [sum(mean) / len(mean)] * in_chans, [sum(std) / len(std)] * in_chans
    return {
        "input_size": [in_chans, int(cfg["input_size"][1]), int(cfg["input_size"][2])],
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "interpolation": str(cfg["interpolation"]),
        "crop_pct": float(cfg["crop_pct"]),
        "crop_mode": str(cfg.get("crop_mode", "center")),
    }


# ---------------------------------------------------------------- dlib


def _dlib_face_backbone(name: str, pretrained: str, in_chans: int) -> Backbone:
    from unifiedgender.crop.face import face_models_file
    from unifiedgender.models.dlib_face import DLIB_DATA_CONFIG, DLIB_FACE_FILE, DlibFaceResNet, dlib_state_dict

    if name.partition(".")[0] != DLIB_FACE_BACKBONE.partition(".")[0] or name.partition(".")[2] not in ("", "v1"):
        raise UserError(f"unknown dlib backbone '{name}'; the one dlib backbone is {DLIB_FACE_BACKBONE}")
    if in_chans != 3:
        raise UserError(f"backbone '{name}' takes 3-channel (RGB) faces, not in_chans={in_chans}")
    module = DlibFaceResNet()
    source = "none"
    if pretrained != "none":
        path = Path(pretrained) if pretrained != "default" else (
            W.find_local_file([DLIB_FACE_FILE]) or face_models_file(DLIB_FACE_FILE))
        if path is None:
            raise UserError(f"backbone '{DLIB_FACE_BACKBONE}' needs {DLIB_FACE_FILE}: pip install face-recognition-models "
                            f"(or put the file in ${W.WEIGHTS_ENV}), or choose --pretrained none")
        state_dict = dlib_state_dict(path) if path.suffix == ".dat" else _backbone_part(W.read_weights_file(path))
        W.load_strict(module, state_dict, f"{path} (as backbone '{DLIB_FACE_BACKBONE}')")
        source = str(path)
    return Backbone(module, module.num_features, dict(DLIB_DATA_CONFIG), DLIB_FACE_BACKBONE, source, module.groups())


# ---------------------------------------------------------------- torchvision


def _torchvision_backbone(name: str, pretrained: str) -> Backbone:
    import torchvision

    model_name, _, tag = name[len(TORCHVISION_PREFIX) :].partition(".")
    family = _tv_family(model_name)
    if family is None or model_name not in torchvision.models.list_models(module=torchvision.models):
        raise UserError(
            f"unknown torchvision backbone '{name}'; supported: tv-resnet18, tv-resnet50, tv-efficientnet_v2_s, "
            "tv-mobilenet_v2, tv-inception_v3, tv-vit_b_16 (and other resnet/efficientnet/mobilenet/vit variants)"
        )
    enum = torchvision.models.get_model_weights(model_name)
    if tag:
        matches = [w for w in enum if w.name.lower() == tag.lower()]
        if not matches:
            raise UserError(f"backbone '{name}': unknown weights '{tag}'; use one of "
                            f"{', '.join(w.name.lower() for w in enum)}")
        weights_enum = matches[0]
    else:
        weights_enum = enum.DEFAULT
    canonical = f"{TORCHVISION_PREFIX}{model_name}.{weights_enum.name.lower()}"
    kwargs: dict[str, Any] = {"weights": None}
    if family == "inception":
        kwargs.update(aux_logits=False, transform_input=True, init_weights=pretrained == "none")
    if family == "vit":
        kwargs["image_size"] = weights_enum.meta.get("min_size", (224, 224))[0]
    module = torchvision.models.get_model(model_name, **kwargs)
    spec = _TV_FAMILIES[family]
    num_features = _tv_strip_heads(module, family)
    source = "none"
    if pretrained != "none":
        filename = os.path.basename(urlparse(weights_enum.url).path)
        path = Path(pretrained) if pretrained != "default" else W.find_local_file([filename])
        if path is None:
            if not W.network_available(urlparse(weights_enum.url).hostname or "download.pytorch.org"):
                others = [f"{TORCHVISION_PREFIX}{model_name}.{w.name.lower()}" for w in enum
                          if w is not weights_enum and W.find_local_file([os.path.basename(urlparse(w.url).path)])]
                hint = f"offline weights exist for {', '.join(others)}" if others else ""
                raise W.no_weights_error(canonical, [filename], hint)
            try:
                state_dict = weights_enum.get_state_dict(progress=False)
            except Exception as exc:  # urllib/http errors
                raise UserError(f"downloading weights for '{canonical}' failed ({type(exc).__name__}: {str(exc)[:160]}); "
                                "retry, or pass a local file with --weights PATH") from exc
            source = "download"
        else:
            state_dict = W.read_weights_file(path)
            source = str(path)
        state_dict = _backbone_part(state_dict)
        heads = spec["heads"]
        state_dict = {k: v for k, v in state_dict.items() if not any(k.startswith(h + ".") for h in heads)}
        W.load_strict(module, state_dict, f"{source} (as backbone '{canonical}')")
    return Backbone(module, num_features, _tv_data_config(weights_enum), canonical, source, _tv_groups(module, family))


def _tv_strip_heads(module: nn.Module, family: str) -> int:
    if family in ("resnet", "inception"):
        num_features = module.fc.in_features
        module.fc = nn.Identity()
        if family == "inception":
            module.AuxLogits = None
            module.aux_logits = False
    elif family == "features":
        num_features = next(m for m in module.classifier.modules() if isinstance(m, nn.Linear)).in_features
        module.classifier = nn.Identity()
    else:
        num_features = module.hidden_dim
        module.heads = nn.Identity()
    return int(num_features)


def _tv_groups(module: nn.Module, family: str) -> list[list[str]]:
    spec = _TV_FAMILIES[family]
    if spec["stages"] == "features":
        stage_prefixes = [f"features.{i}" for i in range(1, len(module.features))]
    elif spec["stages"] == "vit":
        stage_prefixes = [f"encoder.layers.{n}" for n, _ in module.encoder.layers.named_children()] + ["encoder.ln"]
    else:
        stage_prefixes = list(spec["stages"])
    names = [n for n, _ in module.named_parameters()]

    def under(prefixes: tuple[str, ...] | list[str]) -> list[str]:
        return [n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes)]

    return [under(spec["stem"])] + [under([p]) for p in stage_prefixes]


def _tv_data_config(weights_enum: Any) -> dict[str, Any]:
    preset = weights_enum.transforms()
    crop, resize = int(preset.crop_size[0]), int(preset.resize_size[0])
    return {
        "input_size": [3, crop, crop],
        "mean": [float(m) for m in preset.mean],
        "std": [float(s) for s in preset.std],
        "interpolation": preset.interpolation.value,
        "crop_pct": crop / resize,
        "crop_mode": "center",
    }
