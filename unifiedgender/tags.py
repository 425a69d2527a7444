"""Run tags: `<backbone>.<pretrain>_F#_A#_L#_Z#[_key=value ...][_seedN]`, parsed and formatted losslessly.

The grammar and the exact meaning of every code are documented in docs/tags.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

from unifiedgender.errors import UserError


class Code(NamedTuple):
    """A tag code's name in the training part (augmentation preset, loss kind) and its meaning (docs/tags.md)."""

    name: str
    meaning: str


AUGMENT_CODES = {
    "Af": Code("full", "full augmentation (random resized crop, flip, rotation, colour jitter)"),
    "An": Code("none", "no augmentation (the eval transform)"),
    "Ar": Code("randaugment", "RandAugment on top of random resized crop and flip"),
    "Am": Code("mixup", "full augmentation plus batch-level mixup/cutmix"),
}
LOSS_CODES = {
    "Lb": Code("bce", "binary cross-entropy"),
    "Lf": Code("focal", "focal loss"),
    "Lw": Code("weighted_bce", "class-weighted binary cross-entropy"),
}
AUGMENT_PRESETS = tuple(code.name for code in AUGMENT_CODES.values())
LOSS_KINDS = tuple(code.name for code in LOSS_CODES.values())
FLAG_CODES = {"F0": "no modality flag", "F1": "modality flag appended to the features (hand=[1,0], face=[0,1])"}
FREEZE_CODES = {
    "Z0": "nothing frozen",
    "Z1": "whole backbone frozen (linear probe: only the heads train)",
    "Z2": "stem and the first half of the backbone's stages frozen",
    "Z3": "only the last 20 parameterised layers of the backbone (and the heads) train",
}

_BACKBONE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_EXTRA = re.compile(r"^([A-Za-z][A-Za-z0-9]*)=([A-Za-z0-9.\-+]+)$")
_SEED = re.compile(r"^seed(\d+)$")
_CODE_SLOTS = (("F", FLAG_CODES), ("A", AUGMENT_CODES), ("L", LOSS_CODES), ("Z", FREEZE_CODES))


def _valid(codes: dict[str, str]) -> str:
    return ", ".join(codes)


@dataclass(frozen=True)
class RunTag:
    """A parsed run tag. `str(tag)` gives back the canonical text; `RunTag.parse(str(tag)) == tag`."""

    backbone: str
    flag: str = "F0"
    augment: str = "Af"
    loss: str = "Lb"
    freeze: str = "Z0"
    extras: tuple[tuple[str, str], ...] = field(default=())
    seed: int | None = None

    def __post_init__(self) -> None:
        if not _BACKBONE.match(self.backbone) or "_F" in self.backbone:
            raise UserError(
                f"run tag: invalid backbone '{self.backbone}'; use a timm name such as "
                "'tf_efficientnetv2_s.in1k' or a torchvision name such as 'tv-resnet18.imagenet1k_v1'"
            )
        for value, (slot, codes) in zip((self.flag, self.augment, self.loss, self.freeze), _CODE_SLOTS):
            if value not in codes:
                raise UserError(f"run tag: unknown {slot} code '{value}'; valid {slot} codes: {_valid(codes)}")
        keys = [key for key, _ in self.extras]
        if len(set(keys)) != len(keys):
            raise UserError(f"run tag: repeated extra key in {keys}; give each key=value once")
        for key, value in self.extras:
            if not _EXTRA.match(f"{key}={value}") or key.startswith("seed"):
                raise UserError(
                    f"run tag: invalid extra '{key}={value}'; use key=value with letters/digits "
                    "(no '_' inside), keys not starting with 'seed'"
                )
        if self.seed is not None and self.seed < 0:
            raise UserError(f"run tag: seed {self.seed} must be >= 0")

    @property
    def flag_on(self) -> bool:
        """True when the modality flag is appended to the features (F1)."""
        return self.flag == "F1"

    @property
    def augment_preset(self) -> str:
        """The augmentation preset of the A code (unifiedgender.training.augment), e.g. 'full' for Af."""
        return AUGMENT_CODES[self.augment].name

    @property
    def loss_kind(self) -> str:
        """The loss of the L code (unifiedgender.training.losses), e.g. 'focal' for Lf."""
        return LOSS_CODES[self.loss].name

    @property
    def model_name(self) -> str:
        """The backbone without its pretrained tag (e.g. 'tf_efficientnetv2_s')."""
        return self.backbone.split(".", 1)[0]

    @property
    def pretrain(self) -> str | None:
        """The backbone's pretrained tag (e.g. 'in1k'), or None when the tag names none."""
        parts = self.backbone.split(".", 1)
        return parts[1] if len(parts) == 2 else None

    def extra(self, key: str, default: str | None = None) -> str | None:
        """The value of extra `key` (e.g. tag.extra('gating') -> 'soft')."""
        return dict(self.extras).get(key, default)

    def __str__(self) -> str:
        parts = [self.backbone, self.flag, self.augment, self.loss, self.freeze]
        parts += [f"{key}={value}" for key, value in self.extras]
        if self.seed is not None:
            parts.append(f"seed{self.seed}")
        return "_".join(parts)

    @classmethod
    def parse(cls, text: str) -> "RunTag":
        """Parse a tag; raise UserError naming the bad part and the valid codes."""
        if not isinstance(text, str) or not text.strip():
            raise UserError("run tag: empty; expected <backbone>.<pretrain>_F#_A#_L#_Z#[_key=value][_seedN]")
        tokens = text.split("_")
        start = next(
            (i for i in range(1, len(tokens)) if tokens[i][:1] == "F" and tokens[i][1:].isdigit()), None
        )
        if start is None or len(tokens) < start + 4:
            raise UserError(
                f"run tag '{text}': expected <backbone>.<pretrain>_F#_A#_L#_Z#[_key=value][_seedN], "
                f"e.g. tf_efficientnetv2_s.in1k_F0_Af_Lf_Z0; valid codes: F: {_valid(FLAG_CODES)}; "
                f"A: {_valid(AUGMENT_CODES)}; L: {_valid(LOSS_CODES)}; Z: {_valid(FREEZE_CODES)}"
            )
        backbone = "_".join(tokens[:start])
        codes = tokens[start : start + 4]
        for value, (slot, valid) in zip(codes, _CODE_SLOTS):
            if value not in valid:
                raise UserError(f"run tag '{text}': unknown {slot} code '{value}'; valid {slot} codes: {_valid(valid)}")
        extras: list[tuple[str, str]] = []
        seed: int | None = None
        rest = tokens[start + 4 :]
        for position, token in enumerate(rest):
            seed_match = _SEED.match(token)
            if seed_match:
                if position != len(rest) - 1:
                    raise UserError(f"run tag '{text}': '_seedN' must come last; move '{token}' to the end")
                if str(int(seed_match.group(1))) != seed_match.group(1):
                    raise UserError(f"run tag '{text}': write the seed without leading zeros ('seed{int(seed_match.group(1))}')")
                seed = int(seed_match.group(1))
                continue
            extra_match = _EXTRA.match(token)
            if not extra_match:
                raise UserError(
                    f"run tag '{text}': cannot read '{token}'; extras are '_key=value' (no '_' in the value) "
                    "or a final '_seedN'"
                )
            extras.append((extra_match.group(1), extra_match.group(2)))
        return cls(backbone, *codes, extras=tuple(extras), seed=seed)
