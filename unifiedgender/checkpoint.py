"""Checkpoints: one self-describing file per model, loaded safely and strictly.

Layout (format "ugn-checkpoint/1"): format, state_dict, arch, backbone, tag, model_kwargs, flag, modalities
(those the model accepts, its `modalities`; absent in checkpoints saved before it existed, whose rebuilt model
states them), config, data_config, label_map {"female": 0, "male": 1}, metrics, versions, created; `decision`
(temperature and thresholds, unifiedgender.decision; absent in checkpoints saved before it existed); and, in a training run's
resumable "last" checkpoint only, `resume` (optimizer/scheduler/scaler state, epoch, RNG states, ...).
Loading uses torch.load(weights_only=True): a file that needs arbitrary code to unpickle is refused. A published
UnifiedGenderNet UMCC/MAG file is recognised by its keys and read as the ugn checkpoint `ugn convert` would
write for it (unifiedgender.models.compat), so every command takes it directly.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import platform
import random
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unifiedgender.data.manifest import MODALITIES
from unifiedgender.decision import Decision
from unifiedgender.data.transforms import validate_data_config
from unifiedgender.errors import UserError
from unifiedgender.fileio import atomic_path
from unifiedgender.models import create_model
from unifiedgender.models.compat import load_published, published_layout
from unifiedgender.models.weights import load_strict, safe_torch_load, unwrap_state_dict
from unifiedgender.runtime import Runtime

FORMAT = "ugn-checkpoint/1"
LABEL_MAP = {"female": 0, "male": 1}
REQUIRED_KEYS = ("format", "state_dict", "arch", "backbone", "model_kwargs", "data_config")


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a checkpoint."""
    import timm
    import torchvision

    from unifiedgender import __version__

    return {
        "unifiedgender": str(__version__), "torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
        "timm": str(timm.__version__), "python": platform.python_version(),
    }


def to_plain(value: Any, where: str = "checkpoint") -> Any:
    """Recursively convert to what torch.load(weights_only=True) accepts (Paths become strings)."""
    if value is None or isinstance(value, (torch.Tensor, torch.dtype, torch.device, torch.Size)):
        return value
    for plain in (bool, int, float, str):  # exact types: numpy's float64 is a float subclass a safe load refuses
        if isinstance(value, plain):
            return plain(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {key: to_plain(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        items = [to_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy scalars
        return value.item()
    if type(value).__module__ == "numpy":
        return torch.as_tensor(value)
    raise TypeError(f"{where}: {type(value).__name__} cannot be stored in a checkpoint; convert it to plain data")


def checkpoint_payload(
    model: nn.Module,
    *,
    tag: Any = None,
    config: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    resume: Mapping[str, Any] | None = None,
    decision: Decision | None = None,
) -> dict[str, Any]:
    """The dict `save_checkpoint` writes; `decision` is stored when given (what predict/serve/export apply)."""
    model = Runtime.unwrap(model)
    spec = getattr(model, "spec", None)
    if spec is None:
        raise TypeError("model was not built by unifiedgender.models.create_model (no .spec)")
    payload = {
        "format": FORMAT,
        "state_dict": {k: v.detach().to("cpu") for k, v in model.state_dict().items()},
        "arch": spec["arch"],
        "backbone": spec["backbone"],
        "flag": spec["flag"],
        "modalities": list(model.modalities),
        "tag": None if tag is None else str(tag),
        "model_kwargs": to_plain(spec["kwargs"], "model_kwargs"),
        "config": to_plain(dict(config or {}), "config"),
        "data_config": to_plain(dict(model.data_config), "data_config"),
        "label_map": dict(LABEL_MAP),
        "metrics": to_plain(dict(metrics or {}), "metrics"),
        "versions": library_versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if decision is not None:
        payload["decision"] = to_plain(decision.as_dict(), "decision")
    if resume is not None:
        payload["resume"] = to_plain(dict(resume), "resume")
    return payload


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    tag: Any = None,
    config: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    resume: Mapping[str, Any] | None = None,
    decision: Decision | None = None,
    overwrite: bool = True,
) -> Path:
    """Write a checkpoint atomically; `resume` only for the training run's resumable last.pt."""
    payload = checkpoint_payload(model, tag=tag, config=config, metrics=metrics, resume=resume, decision=decision)
    with atomic_path(path, overwrite=overwrite) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict, loaded safely and checked for the ugn layout."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}; check the path (train one with `ugn train`)")
    payload = safe_torch_load(path, map_location=map_location)
    if not isinstance(payload, Mapping) or payload.get("format") != FORMAT:
        converted = _published_payload(path, payload)  # a published UnifiedGenderNet UMCC/MAG file
        if converted is None:
            found = payload.get("format") if isinstance(payload, Mapping) else type(payload).__name__
            raise UserError(f"{path}: not a ugn checkpoint (format {found!r}, expected {FORMAT!r}) nor a published "
                            "UnifiedGenderNet UMCC/MAG state dict; check the file")
        payload = converted
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise UserError(f"{path}: checkpoint lacks '{missing[0]}'; the file is incomplete, re-save it")
    return dict(payload)


def _published_payload(path: Path, loaded: object) -> dict[str, Any] | None:
    """A ugn checkpoint dict for a published UMCC/MAG file already read as `loaded`; None for other layouts."""
    try:
        state_dict = unwrap_state_dict(loaded)
    except UserError:
        return None
    if published_layout(state_dict) is None:
        return None
    model, run_tag, info = load_published(path, loaded=state_dict)
    return checkpoint_payload(model, tag=run_tag, config={"published": info})


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode on map_location, info = the checkpoint dict without state_dict/resume).

    `info["modalities"]` and `model.modalities` are the stored modalities, or for a checkpoint saved before they
    were stored, those the rebuilt model states (its architecture and flag decide them).
    """
    payload = read_checkpoint(path, map_location=map_location)
    validate_data_config(payload["data_config"], str(path))
    model = create_model(
        payload["arch"], payload["backbone"], pretrained="none", flag=bool(payload.get("flag", False)),
        **dict(payload["model_kwargs"]),
    )
    load_strict(model, payload["state_dict"], f"{path}")
    warn_non_finite(payload["state_dict"], str(path))
    model.data_config = dict(payload["data_config"])
    model.weights_source = str(path)
    if "modalities" in payload:
        model.modalities = _stored_modalities(payload["modalities"], path)
    model.to(map_location)
    model.eval()
    info = {k: v for k, v in payload.items() if k not in ("state_dict", "resume")}
    info["modalities"] = tuple(model.modalities)
    return model, info


def _stored_modalities(stored: object, path: str | os.PathLike[str]) -> tuple[str, ...]:
    """A checkpoint's `modalities`, checked: a non-empty list of known modalities."""
    if not isinstance(stored, (list, tuple)) or not stored or not all(m in MODALITIES for m in stored):
        raise UserError(f"{path}: checkpoint 'modalities' {str(stored)[:80]} is not a list drawn from "
                        f"{', '.join(MODALITIES)}; re-save the checkpoint")
    return tuple(stored)


def warn_non_finite(state_dict: Mapping[str, torch.Tensor], source: str) -> list[str]:
    """Warn (and return the names) when floating-point weights hold NaN or infinite values."""
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        warnings.warn(
            f"{source}: {len(bad)} weight tensors hold NaN or infinite values ({', '.join(bad[:3])}"
            f"{', ...' if len(bad) > 3 else ''}); its predictions will fail: retrain or use another checkpoint",
            NonFiniteWeightsWarning, stacklevel=3,
        )
    return bad


class NonFiniteWeightsWarning(UserWarning):
    """A loaded model has NaN or infinite weights."""


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) RNG states, as plain data."""
    import numpy as np

    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.as_tensor(keys.astype("int64")), "pos": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of capture_rng_state."""
    import numpy as np

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].numpy().astype("uint32"), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_whole_model_if_matching(model: nn.Module, path: str | os.PathLike[str]) -> bool:
    """Fine-tuning from a ugn checkpoint: load all of it (backbone and heads) into `model` when its state dict
    matches key for key and shape for shape (same architecture, heads and backbone) and return True. Return False,
    changing nothing, for any other weights file or when the heads differ (then only the backbone was taken)."""
    if Path(path).suffix == ".safetensors":  # plain tensors: never a ugn checkpoint
        return False
    payload = safe_torch_load(path)
    if not isinstance(payload, Mapping) or payload.get("format") != FORMAT or not isinstance(payload.get("state_dict"), Mapping):
        return False
    state, own = payload["state_dict"], model.state_dict()
    if set(state) != set(own) or any(tuple(state[k].shape) != tuple(own[k].shape) for k in own):
        return False
    load_strict(model, state, str(path))
    return True


@dataclasses.dataclass(frozen=True)
class Conversion:
    """What `convert_published` wrote."""

    output: Path
    arch: str
    backbone: str
    flag: bool
    flag_from: str
    tag: str | None
    gating: str | None


def convert_published(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    arch: str | None = None,
    backbone: str | None = None,
    gating: str | None = None,
    tag: str | None = None,
    overwrite: bool = False,
) -> Conversion:
    """Write a published UMCC/MAG file as a ugn checkpoint (default `<source stem>.ugn.pt` beside it) that
    records the release's preprocessing, the run tag and what was inferred (`config.published`)."""
    source = Path(source)
    if not source.is_file():
        raise UserError(f"checkpoint not found: {source}; fetch it with `ugn download checkpoints`")
    loaded = safe_torch_load(source)
    if isinstance(loaded, Mapping) and loaded.get("format") == FORMAT:
        raise UserError(f"{source} is already a ugn checkpoint; use it as it is")
    model, run_tag, info = load_published(source, arch, backbone, gating=gating, tag=tag, loaded=loaded)
    target = Path(output) if output is not None else source.with_name(f"{source.stem}.ugn.pt")
    save_checkpoint(target, model, tag=run_tag, config={"published": info}, overwrite=overwrite)
    return Conversion(target, info["arch"], info["backbone"], info["flag"], info["flag_from"],
                      None if run_tag is None else str(run_tag), info["gating"])
