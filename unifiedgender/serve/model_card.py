"""What the server tells clients about the loaded model, and which modality a request may use."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from fastapi import HTTPException

from unifiedgender.data.manifest import MODALITIES
from unifiedgender.decision import UNCERTAIN_MARGIN


@dataclass(frozen=True)
class ModelCard:
    """Identity of the served model and the modalities a client may choose (only when `needs_modality`)."""

    tag: str
    arch: str
    backbone: str
    input_size: tuple[int, ...]
    needs_modality: bool
    modalities: tuple[str, ...]
    threshold: dict  # value, method, chosen_on, description, uncertain_margin: the decision the page shows

    @classmethod
    def from_predictor(cls, predictor) -> ModelCard:
        """Describe a `unifiedgender.inference.predictor.Predictor` (from a checkpoint or an ONNX export)."""
        model = getattr(predictor.backend, "model", None)  # TorchBackend; an ONNX backend has no nn.Module
        spec = getattr(model, "spec", None) or {"arch": "onnx", "backbone": predictor.tag.split("_F", 1)[0]}
        modalities = tuple(predictor.modalities)
        choice = predictor.threshold_choice
        return cls(
            tag=predictor.tag or str(spec["backbone"]),
            arch=str(spec["arch"]),
            backbone=str(spec["backbone"]),
            input_size=tuple(int(v) for v in predictor.data_config["input_size"]),
            needs_modality=modalities != MODALITIES,  # conditioned models (UMCC F1, MAG) take only some
            modalities=modalities,
            threshold={**choice.as_dict(), "description": choice.describe(), "uncertain_margin": UNCERTAIN_MARGIN},
        )

    def as_dict(self) -> dict:
        """JSON-friendly card for /health."""
        return asdict(self)

    def resolve_modality(self, requested: str | None) -> str | None:
        """The modality to predict with (None for a model that ignores it); 422 naming the choices otherwise."""
        if not requested:
            if self.needs_modality:
                raise HTTPException(
                    422, f"choose a modality: this model accepts {', '.join(self.modalities)}; "
                    "send it in the form field 'modality'"
                )
            return None
        if requested not in self.modalities:
            raise HTTPException(
                422, f"unknown modality '{requested}' for this model; use one of {', '.join(self.modalities)}"
            )
        return requested
