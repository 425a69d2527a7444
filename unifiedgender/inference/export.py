"""Export a checkpoint to ONNX (onnxruntime) or TorchScript, with the preprocessing stored beside the weights.

Both take the inputs and give the output described in `unifiedgender.inference.onnx_io` (image, modality ->
raw male logit, dynamic batch axis). ONNX keeps the ugn metadata there described; TorchScript keeps the same
JSON in the extra file `ugn.json`.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unifiedgender.decision import Decision
from unifiedgender.errors import UserError
from unifiedgender.fileio import atomic_path
from unifiedgender.inference.onnx_io import ONNX_FORMAT, LogitModel, export_onnx, run_onnx, sample_inputs

FORMATS = ("onnx", "torchscript")


def default_output(checkpoint: str | os.PathLike[str], fmt: str) -> Path:
    """model.pt -> model.onnx / model.torchscript.pt."""
    path = Path(checkpoint)
    return path.with_suffix(".onnx" if fmt == "onnx" else ".torchscript.pt")


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    fmt: str,
    output: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    threshold: float | None = None,
    threshold_policy: str | None = None,
) -> dict[str, Any]:
    """Export `checkpoint` with its decision (`threshold` or `threshold_policy` set the stored default);
    returns {"output", "format", "max_abs_diff" (vs. PyTorch on a sample batch), "threshold" (a Threshold)}."""
    from unifiedgender.checkpoint import load_checkpoint

    if fmt not in FORMATS:
        raise UserError(f"unknown export format '{fmt}'; use one of {', '.join(FORMATS)}")
    if not Path(checkpoint).is_file():
        raise UserError(f"checkpoint not found: {checkpoint}; train one with `ugn train`")
    out = Path(output) if output is not None else default_output(checkpoint, fmt)
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists; pass --overwrite or choose another output path with -o")
    model, info = load_checkpoint(checkpoint)
    decision = Decision.from_dict(info.get("decision"), str(checkpoint))
    chosen = decision.threshold(threshold, threshold_policy)
    meta = {
        "format": ONNX_FORMAT,
        "data_config": info["data_config"],
        "tag": str(info.get("tag") or ""),
        "arch": str(info["arch"]),
        "modalities": list(model.modalities),
        "decision": decision.with_threshold(chosen).as_dict(),
    }
    wrapped = LogitModel(model.cpu().eval()).eval()
    sample = sample_inputs(info["data_config"], batch=2)
    with atomic_path(out, overwrite=overwrite) as tmp:
        if fmt == "onnx":
            export_onnx(wrapped, sample, tmp, meta)
            got = run_onnx(tmp, *sample)
        else:
            export_torchscript(wrapped, sample, tmp, meta)
            got = run_torchscript(tmp, *sample)
        with torch.inference_mode():
            want = wrapped(*sample).numpy()
        diff = float(np.max(np.abs(got - want)))
    return {"output": out, "format": fmt, "max_abs_diff": diff, "threshold": chosen}


def export_torchscript(model: torch.nn.Module, sample: tuple[torch.Tensor, torch.Tensor], path: Path, meta: dict) -> None:
    """Trace to TorchScript (batch size follows the input) with the metadata as the extra file ugn.json."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream; still asked for
        traced = torch.jit.trace(model, sample, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={"ugn.json": json.dumps(meta)})


def run_torchscript(path: str | os.PathLike[str], image: torch.Tensor, modality: torch.Tensor) -> np.ndarray:
    """Logits from a saved TorchScript model."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), map_location="cpu")
        return module(image, modality).numpy().reshape(-1)
