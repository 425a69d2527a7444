"""The published UnifiedGenderNet checkpoints (UMCC / MAG): recognised by their keys, loaded strictly.

Their layout: UMCC `backbone.*` (timm model, num_classes=0, global_pool="avg") + `classifier.weight/bias`
(in_features = num_features + 2 with the modality flag); MAG `backbone.*`, `gate.0.*`, `gate.2.*`,
`hand_head.*`, `face_head.*`. The state dict is bare or under "state_dict"/"model"; "module." prefixes are
removed. They predict the probability of male, like every ugn model, with the release's flag convention
(hand = [1, 0], face = [0, 1]) and its preprocessing (scripts/predict.py: `Resize((224, 224))` then
`ToTensor()`, no mean/std normalisation), which `RELEASE_DATA_CONFIG` states in ugn's terms.

What the file does not say is taken from its run tag (its file name, or the tag the release gives it, see
`unifiedgender.data.sources`) or given by the caller: the backbone (default: the release's
tf_efficientnetv2_s.in1k) and MAG's gating (default soft, as the release's predict script). The modality flag
is read from the file itself: the classifier's input width is num_features + 2 with the flag on.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unifiedgender.data.sources import RELEASE_BACKBONE, release_run_tag
from unifiedgender.errors import UserError
from unifiedgender.models.factory import create_model
from unifiedgender.models.weights import load_strict, safe_torch_load, unwrap_state_dict
from unifiedgender.tags import RunTag

PUBLISHED_ARCHS = ("umcc", "mag")
RELEASE_PREPROCESSING = "Resize((224, 224)) + ToTensor(), no mean/std normalisation (the release's scripts/predict.py)"
RELEASE_DATA_CONFIG: dict[str, Any] = {
    "input_size": [3, 224, 224], "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],
    "interpolation": "bilinear", "crop_pct": 1.0, "crop_mode": "squash",
}
HEAD_KEYS = {
    "umcc": {"classifier.weight", "classifier.bias"},
    "mag": {f"{head}.{p}" for head in ("gate.0", "gate.2", "hand_head", "face_head") for p in ("weight", "bias")},
}


def published_layout(state_dict: Mapping[str, Any]) -> str | None:
    """'umcc' or 'mag' when the keys are `backbone.*` plus that architecture's heads, else None."""
    heads = {key for key in state_dict if not key.startswith("backbone.")}
    if len(heads) == len(state_dict):
        return None
    return next((arch for arch, keys in HEAD_KEYS.items() if heads == keys), None)


def _release_tag(path: Path, tag: str | RunTag | None) -> RunTag | None:
    """The given tag, else the file name when it is a run tag, else the tag the release gives that file."""
    if tag is not None:
        return RunTag.parse(str(tag))
    try:
        return RunTag.parse(path.stem)
    except UserError:
        known = release_run_tag(path.name)
        return RunTag.parse(known) if known else None


def load_published(
    path: str | os.PathLike[str],
    arch: str | None = None,
    backbone: str | None = None,
    *,
    flag: bool | None = None,
    gating: str | None = None,
    tag: str | RunTag | None = None,
    loaded: object = None,
) -> tuple[nn.Module, RunTag | None, dict[str, Any]]:
    """(model in eval mode with the release's data_config, its run tag, what was inferred and from where).

    arch: 'umcc'/'mag' (default: from the keys); flag: None reads it from the classifier width; `loaded`:
    the file's content when the caller has already read it.
    """
    path = Path(path)
    state_dict = unwrap_state_dict(safe_torch_load(path) if loaded is None else loaded, source=str(path))
    arch = arch or published_layout(state_dict)
    if arch not in PUBLISHED_ARCHS:
        raise UserError(f"{path}: published checkpoints are umcc or mag, not '{arch}'" if arch else
                        f"{path}: keys are not those of a published UMCC or MAG checkpoint; check the file")
    parsed = _release_tag(path, tag)
    backbone = backbone or (parsed.backbone if parsed else None) or RELEASE_BACKBONE
    kwargs: dict[str, Any] = {}
    if arch == "mag":
        if flag:
            raise UserError("published MAG checkpoints have no modality flag; use F0 / flag=False")
        kwargs["gating"] = gating or (parsed.extra("gating") if parsed else None) or "soft"
    model = create_model(arch, backbone, pretrained="none", flag=bool(flag), **kwargs)
    flag_from = "given" if flag is not None else "MAG has no flag" if arch == "mag" else "unknown"
    if arch == "umcc" and flag is None and "classifier.weight" in state_dict:  # else load_strict names the keys
        flag, flag_from = _flag_from_width(path, state_dict, model.classifier.in_features, backbone)
        if flag:
            model = create_model(arch, backbone, pretrained="none", flag=True)
    load_strict(model, state_dict, f"{path} (published {arch}, backbone {backbone}, flag {'on' if flag else 'off'})")
    model.data_config = dict(RELEASE_DATA_CONFIG)
    model.weights_source = str(path)
    run_tag = dataclasses.replace(parsed, backbone=backbone, flag="F1" if flag else "F0") if parsed else None
    info = {"file": str(path), "arch": arch, "backbone": backbone, "flag": bool(flag), "flag_from": flag_from,
            "release_tag": str(parsed) if parsed else None, "gating": kwargs.get("gating"),
            "preprocessing": RELEASE_PREPROCESSING}
    return model.eval(), run_tag, info


def _flag_from_width(path: Path, state_dict: Mapping[str, torch.Tensor], features: int, backbone: str) -> tuple[bool, str]:
    """Flag on when the classifier takes num_features + 2 inputs, off when num_features; else UserError."""
    width = int(state_dict["classifier.weight"].shape[-1])
    if width not in (features, features + 2):
        raise UserError(f"{path}: classifier takes {width} inputs but backbone {backbone} gives {features} features "
                        f"(+2 with the flag); name the right backbone (ugn convert --backbone, or a run tag)")
    return width == features + 2, f"classifier input width {width} = {features} features" + (" + 2" if width > features else "")


def load_published_checkpoint(
    path: str | os.PathLike[str],
    arch: str,
    backbone: str | None = None,
    *,
    flag: bool | None = None,
    gating: str | None = None,
    tag: str | RunTag | None = None,
) -> nn.Module:
    """A published UMCC/MAG checkpoint as a ugn model in eval mode (CPU); see `load_published`."""
    if arch not in PUBLISHED_ARCHS:
        raise UserError(f"published checkpoints are umcc or mag, not '{arch}'")
    return load_published(path, arch, backbone, flag=flag, gating=gating, tag=tag)[0]
