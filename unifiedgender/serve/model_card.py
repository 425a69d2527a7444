"""What the server tells clients about the loaded model, and which modality a request may use."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from fastapi import HTTPException


@dataclass(frozen=True)
class ModelCard:
    """Identity of the served checkpoint and the modalities it accepts (first one is the default)."""

    tag: str
    arch: str
    backbone: str
    modalities: tuple[str, ...]
    input_size: tuple[int, ...]

    @property
    def needs_modality(self) -> bool:
        """True when the client must choose a modality (the model was trained on several)."""
        return len(self.modalities) > 1

    @classmethod
    def from_predictor(cls, predictor) -> ModelCard:
        """Read the card from a `Predictor`'s checkpoint info."""
        info = predictor.info
        return cls(
            tag=str(info.get("tag") or ""),
            arch=str(info["arch"]),
            backbone=str(info["backbone"]),
            modalities=tuple(predictor.modalities),
            input_size=tuple(info["data_config"]["input_size"]),
        )

    def as_dict(self) -> dict:
        """JSON-friendly card for /health."""
        return {**asdict(self), "needs_modality": self.needs_modality}

    def resolve_modality(self, requested: str | None) -> str:
        """The modality to predict with: the requested one if this model accepts it, else a 422 naming the choices."""
        if not requested:
            if not self.needs_modality:
                return self.modalities[0]
            raise HTTPException(
                422, f"choose a modality: this model accepts {', '.join(self.modalities)}; send it in the field 'modality'"
            )
        if requested not in self.modalities:
            raise HTTPException(
                422, f"unknown modality '{requested}' for this model; use one of {', '.join(self.modalities)}"
            )
        return requested
