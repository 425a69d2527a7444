"""Fingerprint preprocessing named in a model's data config (`"preprocess": "crop+clahe+gabor"`).

The steps run on the full-resolution grayscale image before the resize of the evaluation transform, in a
fixed order whatever order they are named in:
  crop   crop to the print's foreground (local-contrast mask, scanner frame lines dropped)
  clahe  contrast-limited adaptive histogram equalisation
  gabor  oriented Gabor ridge enhancement at the print's own ridge period (background -> white)
Training (the decoded cache) and evaluate/predict/serve/export (EvalTransform) both apply it from the data
config the checkpoint stores, so a model always sees what it was trained on.
"""

from __future__ import annotations

from typing import Any

from unifiedgender.errors import UserError

STEPS = ("crop", "clahe", "gabor")  # application order


def parse_preprocess(spec: str | None) -> tuple[str, ...]:
    """"clahe+crop" (or "clahe,crop") -> ("crop", "clahe"); "" / "none" / None -> (); UserError on unknown steps."""
    if spec is None:
        return ()
    names = [p.strip().lower() for p in str(spec).replace(",", "+").split("+") if p.strip()]
    if names in ([], ["none"]):
        return ()
    unknown = [n for n in names if n not in STEPS]
    if unknown:
        raise UserError(f"preprocess step '{unknown[0]}' unknown; use steps from {', '.join(STEPS)} joined by '+' "
                        "(e.g. crop+clahe), or none")
    return tuple(step for step in STEPS if step in names)


def canonical_preprocess(spec: str | None) -> str:
    """The canonical spelling stored in data configs ("" for none)."""
    return "+".join(parse_preprocess(spec))


class FingerprintPreprocess:
    """PIL image -> PIL image of the same mode with the steps applied (on its grayscale version). Picklable."""

    def __init__(self, spec: str) -> None:
        self.steps = parse_preprocess(spec)

    def __call__(self, image: Any) -> Any:
        import numpy as np
        from PIL import Image

        from unifiedgender.fingerprints import ridges

        gray = np.asarray(image.convert("L"))
        if "crop" in self.steps:
            box = ridges.bounding_box(ridges.foreground_mask(gray))
            if box is not None:
                top, bottom, left, right = box
                gray = gray[top:bottom, left:right]
        if "clahe" in self.steps:
            gray = ridges.clahe(gray)
        if "gabor" in self.steps:
            gray = ridges.gabor_enhance(gray)
        out = Image.fromarray(np.ascontiguousarray(gray), mode="L")
        return out if image.mode == "L" else out.convert(image.mode)

    def __repr__(self) -> str:
        return f"FingerprintPreprocess({'+'.join(self.steps) or 'none'})"
