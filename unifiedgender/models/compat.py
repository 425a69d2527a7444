"""Loading the published UnifiedGenderNet checkpoints (UMCC / MAG) strictly.

Their layout: UMCC `backbone.*` (timm model, num_classes=0, global_pool="avg") + `classifier.weight/bias`
(in_features = num_features + 2 with the flag); MAG `backbone.*`, `gate.0.*`, `gate.2.*`, `hand_head.*`,
`face_head.*`. The state dict is bare or under "state_dict"/"model"; "module." prefixes are removed.
They predict the probability of male, like every ugn model.
"""

from __future__ import annotations

import os

from torch import nn

from unifiedgender.errors import UserError
from unifiedgender.models.registry import create_model
from unifiedgender.models.weights import load_strict, safe_torch_load, unwrap_state_dict
from unifiedgender.tags import RunTag

PUBLISHED_ARCHS = ("umcc", "mag")


def load_published_checkpoint(
    path: str | os.PathLike[str],
    arch: str,
    backbone: str | None = None,
    *,
    flag: bool | None = None,
    gating: str | None = None,
    tag: str | RunTag | None = None,
) -> nn.Module:
    """A published UMCC/MAG checkpoint as a ugn model in eval mode (CPU).

    `tag` (e.g. 'tf_efficientnetv2_s.in1k_F0_Af_Lf_Z0') supplies backbone, flag and gating when not given.
    """
    if arch not in PUBLISHED_ARCHS:
        raise UserError(f"published checkpoints are umcc or mag, not '{arch}'")
    parsed = RunTag.parse(str(tag)) if tag is not None else None
    backbone = backbone or (parsed.backbone if parsed else None)
    if not backbone:
        raise UserError("published checkpoint: give the backbone (e.g. tf_efficientnetv2_s.in1k) or its run tag")
    if flag is None:
        flag = parsed.flag_on if parsed else False
    kwargs = {}
    if arch == "mag":
        kwargs["gating"] = gating or (parsed.extra("gating") if parsed else None) or "soft"
        if flag:
            raise UserError("published MAG checkpoints have no modality flag; use F0 / flag=False")
    model = create_model(arch, backbone, pretrained="none", flag=flag, **kwargs)
    state_dict = unwrap_state_dict(safe_torch_load(path), source=str(path))
    load_strict(model, state_dict, f"{path} (published {arch}, backbone {backbone}, flag {'on' if flag else 'off'})")
    model.weights_source = str(path)
    return model.eval()
