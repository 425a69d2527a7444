"""What every architecture shares: the forward contract and modality helpers."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from unifiedgender.data.manifest import MODALITIES
from unifiedgender.errors import UserError

HAND, FACE = MODALITIES.index("hand"), MODALITIES.index("face")  # modality indices, as the data loaders give them
HAND_FACE = ("hand", "face")  # what a model conditioned on the hand/face flag (UMCC F1) or gated by it (MAG) takes


class GenderModel(nn.Module):
    """Base for all architectures: `forward(images, modality) -> {"logit": [B], ...}` (male logit).

    Set by `create_model`: `data_config`, `spec` (arch, backbone, flag, kwargs to rebuild it) and
    `weights_source`. Subclasses set `default_freeze` (the freezing code applied at construction) and, when they
    take only some modalities, `modalities` (class or instance attribute): the one statement of which modalities
    a model accepts, stored in its checkpoint and ONNX export and read by training, predict, serve and bench.
    """

    default_freeze = "Z0"
    modalities: tuple[str, ...] = MODALITIES

    data_config: dict[str, Any]
    spec: dict[str, Any]
    weights_source: str

    def head_modules(self) -> list[nn.Module]:
        """The modules that are not the backbone (always trainable under every freezing code)."""
        return [m for name, m in self.named_children() if name != "backbone"]


def hand_face_flag(modality: torch.Tensor) -> torch.Tensor:
    """[B] modality indices -> [B,2] float flags: hand=[1,0], face=[0,1]. Other modalities are refused."""
    if not (torch.jit.is_tracing() or torch.compiler.is_compiling()) and bool(((modality != HAND) & (modality != FACE)).any()):
        raise UserError(
            "this model takes hand or face images only (its modality flag is hand=[1,0], face=[0,1]); "
            "set the modality column to hand or face, or use a model trained without the flag (F0)"
        )
    return torch.stack([modality == HAND, modality == FACE], dim=1).to(torch.float32)
