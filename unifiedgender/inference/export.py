"""Export a checkpoint to ONNX (onnxruntime) or TorchScript, with the preprocessing stored beside the weights.

Both take two inputs, `image` float32 [N,C,H,W] (already normalised as in `data_config`) and `modality`
int64 [N] (indices into MODALITIES), with a dynamic batch axis, and return the raw male logit [N]. ONNX keeps
`ugn.data_config`, `ugn.tag`, `ugn.arch`, `ugn.modalities` (those the model accepts) and `ugn.decision` (temperature
and thresholds, unifiedgender.decision; absent in older exports) in its metadata; TorchScript keeps the same JSON
in the extra file `ugn.json`.
"""

from __future__ import annotations

import io
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

FORMATS = ("onnx", "torchscript")
ONNX_FORMAT = "ugn-onnx/1"
OPSET = 17


class LogitModel(torch.nn.Module):
    """`model(image, modality)["logit"]` as a plain tensor-to-tensor module for tracing."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        return self.model(image, modality)["logit"].reshape(-1)


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
    from unifiedgender.inference.predictor import allowed_modalities

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
        "modalities": list(allowed_modalities(info["arch"], bool(info.get("flag")))),
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


def sample_inputs(data_config: dict[str, Any], batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic random batch of the model's input size and alternating modality indices."""
    generator = torch.Generator().manual_seed(0)
    image = torch.randn((batch, *(int(v) for v in data_config["input_size"])), generator=generator)
    return image, torch.arange(batch, dtype=torch.long) % 2


def trace_onnx(model: torch.nn.Module, sample: tuple[torch.Tensor, torch.Tensor]) -> Any:
    """The ONNX graph (onnx.ModelProto) of a LogitModel: inputs image/modality with a dynamic batch axis."""
    import onnx

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript-based exporter (dynamo=False) needs no onnxscript; its deprecation notices are noise here.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            model,
            sample,
            buffer,
            dynamo=False,
            input_names=["image", "modality"],
            output_names=["logit"],
            dynamic_axes={"image": {0: "batch"}, "modality": {0: "batch"}, "logit": {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    if "modality" not in [i.name for i in proto.graph.input]:
        # The exporter drops an input the graph never reads (models not conditioned on modality); keep the API.
        proto.graph.input.append(onnx.helper.make_tensor_value_info("modality", onnx.TensorProto.INT64, ["batch"]))
    return proto


def export_onnx(model: torch.nn.Module, sample: tuple[torch.Tensor, torch.Tensor], path: Path, meta: dict) -> None:
    """Trace to ONNX and write it with the metadata (ugn.* keys) into `path`."""
    import onnx

    proto = trace_onnx(model, sample)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"ugn.{key}", json.dumps(value) if not isinstance(value, str) else value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def read_onnx_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ugn metadata of an exported ONNX model; a UserError if the file is not one."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others for non-ONNX input
        raise UserError(f"{path}: not a readable ONNX model ({type(exc).__name__}); export one with `ugn export`") from exc
    props = {p.key: p.value for p in proto.metadata_props}
    if props.get("ugn.format") != ONNX_FORMAT:
        raise UserError(f"{path}: ONNX model without ugn metadata; export it with `ugn export CKPT --format onnx`")
    return {
        "data_config": json.loads(props["ugn.data_config"]),
        "tag": props.get("ugn.tag", ""),
        "arch": props.get("ugn.arch", ""),
        "modalities": tuple(json.loads(props["ugn.modalities"])),
        "decision": Decision.from_dict(json.loads(props["ugn.decision"]) if "ugn.decision" in props else None, str(path)),
    }


def run_onnx(path: str | os.PathLike[str], image: torch.Tensor, modality: torch.Tensor) -> np.ndarray:
    """Logits from onnxruntime on the CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(["logit"], {"image": image.numpy(), "modality": modality.numpy()})
    return np.asarray(out).reshape(-1)


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
