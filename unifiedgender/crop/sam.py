"""SAM2 (Meta's `sam2` package) behind two calls: load a point-prompt predictor, predict the best mask.

Checkpoints are never downloaded here: the user passes an official file (see SAM2_MODELS), read with the
package's safe loader (`unifiedgender.models.weights.safe_torch_load`: tensors and plain data only) and loaded
strictly (`load_strict`, which names mismatching keys).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from unifiedgender.errors import UserError

if TYPE_CHECKING:
    from PIL import Image
    from sam2.sam2_image_predictor import SAM2ImagePredictor

_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything_2"
# config name -> (bundled hydra config inside the sam2 package, official checkpoint URL)
SAM2_MODELS: dict[str, tuple[str, str]] = {
    "sam2.1_hiera_t": ("configs/sam2.1/sam2.1_hiera_t.yaml", f"{_BASE_URL}/092824/sam2.1_hiera_tiny.pt"),
    "sam2.1_hiera_s": ("configs/sam2.1/sam2.1_hiera_s.yaml", f"{_BASE_URL}/092824/sam2.1_hiera_small.pt"),
    "sam2.1_hiera_b+": ("configs/sam2.1/sam2.1_hiera_b+.yaml", f"{_BASE_URL}/092824/sam2.1_hiera_base_plus.pt"),
    "sam2.1_hiera_l": ("configs/sam2.1/sam2.1_hiera_l.yaml", f"{_BASE_URL}/092824/sam2.1_hiera_large.pt"),
    "sam2_hiera_t": ("configs/sam2/sam2_hiera_t.yaml", f"{_BASE_URL}/072824/sam2_hiera_tiny.pt"),
    "sam2_hiera_s": ("configs/sam2/sam2_hiera_s.yaml", f"{_BASE_URL}/072824/sam2_hiera_small.pt"),
    "sam2_hiera_b+": ("configs/sam2/sam2_hiera_b+.yaml", f"{_BASE_URL}/072824/sam2_hiera_base_plus.pt"),
    "sam2_hiera_l": ("configs/sam2/sam2_hiera_l.yaml", f"{_BASE_URL}/072824/sam2_hiera_large.pt"),
}
DEFAULT_CONFIG = "sam2.1_hiera_t"


def resolve_config(config: str) -> str:
    """A config name ("sam2.1_hiera_t") or bundled path ("configs/sam2.1/sam2.1_hiera_t.yaml") -> the hydra path."""
    name = Path(config).name.removesuffix(".yaml")
    if name not in SAM2_MODELS:
        raise UserError(f"--config {config!r} is not a SAM2 config; use one of {', '.join(SAM2_MODELS)}")
    return SAM2_MODELS[name][0]


def checkpoint_help(config: str = DEFAULT_CONFIG) -> str:
    """Where to get the official checkpoint that matches `config`."""
    name = Path(config).name.removesuffix(".yaml")
    url = SAM2_MODELS.get(name, SAM2_MODELS[DEFAULT_CONFIG])[1]
    return (
        f"download the official SAM2 checkpoint that matches --config {name} ({url}; the other sizes sit beside it "
        "and their configs ship with the sam2 package, see https://github.com/facebookresearch/sam2) "
        "and pass it with --checkpoint FILE"
    )


def build_sam2_model(config: str = DEFAULT_CONFIG, image_size: int | None = None, device: str = "cpu") -> Any:
    """An untrained SAM2 model from a bundled config, optionally at a smaller input size (e.g. 256 for tests)."""
    try:
        from sam2.build_sam import build_sam2
    except ImportError as exc:
        raise UserError(
            f"the sam2 package is not importable ({exc}); install it with "
            "`SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0` after torch"
        ) from exc
    overrides = []
    if image_size is not None:
        if image_size < 64 or image_size % 64:
            raise UserError(f"--image-size {image_size} is not supported; use a multiple of 64 (SAM2's default is 1024)")
        overrides.append(f"++model.image_size={image_size}")
    return build_sam2(resolve_config(config), None, device=device, hydra_overrides_extra=overrides)


def load_checkpoint_weights(model: Any, checkpoint: str | os.PathLike[str], config: str = DEFAULT_CONFIG) -> None:
    """Load an official-format checkpoint ({"model": state_dict}) safely and strictly into `model`."""
    from unifiedgender.models.weights import load_strict, safe_torch_load

    path = check_checkpoint(checkpoint, config)
    try:
        payload = safe_torch_load(path)
    except UserError as exc:  # damaged file, or pickled objects refused by weights_only
        raise UserError(f"not a loadable SAM2 checkpoint: {exc}; {checkpoint_help(config)}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        raise UserError(f"{path}: expected a dict with a 'model' state dict (the official SAM2 format); {checkpoint_help(config)}")
    load_strict(model, payload["model"], f"{path} (SAM2 --config {config})",
                hint="pass the --config the checkpoint was made for")


def check_checkpoint(checkpoint: str | os.PathLike[str] | None, config: str = DEFAULT_CONFIG) -> Path:
    """The checkpoint path, after checking it was given, exists and `config` is known (cheap; loads nothing)."""
    resolve_config(config)
    if checkpoint is None:
        raise UserError(f"--checkpoint is required (no SAM2 weights ship offline); {checkpoint_help(config)}")
    if not Path(checkpoint).is_file():
        raise UserError(f"SAM2 checkpoint not found: {checkpoint}; {checkpoint_help(config)}")
    return Path(checkpoint)


def load_predictor(
    checkpoint: str | os.PathLike[str] | None,
    config: str = DEFAULT_CONFIG,
    image_size: int | None = None,
    device: str | None = "auto",
) -> SAM2ImagePredictor:
    """A SAM2 image predictor from an official checkpoint, in eval mode on `device` (default: GPU when present)."""
    check_checkpoint(checkpoint, config)  # fail before the slow model build
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    from unifiedgender.runtime import resolve_device

    device = resolve_device(device)
    model = build_sam2_model(config, image_size=image_size, device="cpu")
    load_checkpoint_weights(model, checkpoint, config)
    model = model.to(device).eval()
    with warnings.catch_warnings():  # sam2 1.1.0 scripts its transforms with the deprecated torch.jit.script
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
        predictor = SAM2ImagePredictor(model)
    size = model.image_size
    # The predictor hard-codes the feature sizes for 1024 px inputs; keep them in step with the model's size.
    predictor._bb_feat_sizes = [(size // 4, size // 4), (size // 8, size // 8), (size // 16, size // 16)]
    return predictor


def as_rgb_uint8(image: Image.Image | np.ndarray, channel_order: str = "RGB") -> np.ndarray:
    """An HxWx3 uint8 RGB array, as SAM2 wants, from a PIL image or a gray/RGB/RGBA/BGR(A) array."""
    from PIL import Image as PILImage

    from unifiedgender.data.images import to_mode

    if isinstance(image, PILImage.Image):
        return np.array(to_mode(image, "RGB"), dtype=np.uint8)
    array = np.asarray(image)
    if array.dtype != np.uint8:
        scale = 255.0 if array.dtype.kind == "f" and array.max(initial=0) <= 1.0 else 1.0
        if array.dtype == np.uint16:
            scale = 255.0 / 65535.0
        array = np.clip(array.astype(np.float64) * scale + 0.5, 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxW, HxWx3 or HxWx4 image, got shape {array.shape}")
    if channel_order.upper().startswith("BGR"):
        array = array[:, :, [2, 1, 0, *range(3, array.shape[2])]]
    if array.shape[2] == 4:
        return np.array(to_mode(PILImage.fromarray(array), "RGB"), dtype=np.uint8)
    return np.ascontiguousarray(array)


def predict_best_mask(
    predictor: SAM2ImagePredictor, image: Image.Image | np.ndarray, points: np.ndarray
) -> tuple[np.ndarray, float]:
    """Prompt SAM2 with foreground `points` (multimask output); return the highest-scoring mask (HxW float 0/1)
    and its predicted score. `image` is a PIL image or an RGB/gray/RGBA array."""
    import torch

    with torch.inference_mode():
        predictor.set_image(as_rgb_uint8(image))
        masks, scores, _ = predictor.predict(
            point_coords=points, point_labels=np.ones(len(points), dtype=np.int32), multimask_output=True
        )
    best = int(np.argmax(scores))
    return masks[best], float(scores[best])

