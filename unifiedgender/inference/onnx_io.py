"""ONNX helpers shared by `ugn export` and the predictor (a leaf: neither imports the other through it).

The graph: inputs `image` float32 [N,C,H,W] (normalised as in `data_config`) and `modality` int64 [N] (indices
into MODALITIES) with a dynamic batch axis, output the raw male logit [N]. The metadata: `ugn.format`,
`ugn.data_config`, `ugn.tag`, `ugn.arch`, `ugn.modalities` (those the model accepts) and `ugn.decision`
(temperature and thresholds, unifiedgender.decision; absent in older exports).
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

from unifiedgender.data.manifest import MODALITIES
from unifiedgender.data.transforms import validate_data_config
from unifiedgender.decision import Decision
from unifiedgender.errors import UserError

ONNX_FORMAT = "ugn-onnx/1"
OPSET = 17


class LogitModel(torch.nn.Module):
    """`model(image, modality)["logit"]` as a plain tensor-to-tensor module for tracing."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        return self.model(image, modality)["logit"].reshape(-1)


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
    """The ugn metadata of an exported ONNX model; a UserError if the file is not one, its metadata is bad,
    or it keeps weights in external files (`ugn export` writes one self-contained file; an external-data path
    could point anywhere on this machine)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others for non-ONNX input
        raise UserError(f"{path}: not a readable ONNX model ({type(exc).__name__}); export one with `ugn export`") from exc
    props = {p.key: p.value for p in proto.metadata_props}
    if props.get("ugn.format") != ONNX_FORMAT:
        raise UserError(f"{path}: ONNX model without ugn metadata; export it with `ugn export CKPT --format onnx`")
    external = [t.name for t in _initializers(proto.graph) if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise UserError(f"{path}: weights stored in external files ({', '.join(external[:3])}); refusing: "
                        "export a self-contained model with `ugn export CKPT --format onnx`")
    meta = {"data_config": _metadata_json(props, "data_config", path), "tag": props.get("ugn.tag", "")[:MAX_TAG],
            "arch": props.get("ugn.arch", "")[:MAX_TAG], "modalities": _metadata_json(props, "modalities", path),
            "decision": Decision.from_dict(_metadata_json(props, "decision", path) if "ugn.decision" in props else None,
                                           str(path))}
    validate_data_config(meta["data_config"], str(path))
    modalities = meta["modalities"]
    if not isinstance(modalities, list) or not modalities or not all(m in MODALITIES for m in modalities):
        raise UserError(f"{path}: metadata ugn.modalities {str(modalities)[:80]} is not a list drawn from "
                        f"{', '.join(MODALITIES)}; re-export the model")
    meta["modalities"] = tuple(modalities)
    return meta


MAX_METADATA_CHARS = 64 * 1024  # a data_config or modality list is a few hundred characters
MAX_TAG = 500


def _metadata_json(props: dict[str, str], key: str, path: str | os.PathLike[str]) -> Any:
    text = props.get(f"ugn.{key}")
    if text is None or len(text) > MAX_METADATA_CHARS:
        what = "missing" if text is None else f"{len(text):,} characters long"
        raise UserError(f"{path}: metadata ugn.{key} is {what}; re-export the model with `ugn export`")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise UserError(f"{path}: metadata ugn.{key} is not valid JSON; re-export the model with `ugn export`") from None


def _initializers(graph: Any) -> Any:
    """Every initializer of a graph and of its sub-graphs (If/Loop bodies)."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            for sub in (*([attribute.g] if attribute.HasField("g") else []), *attribute.graphs):
                yield from _initializers(sub)


def run_onnx(path: str | os.PathLike[str], image: torch.Tensor, modality: torch.Tensor) -> np.ndarray:
    """Logits from onnxruntime on the CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(["logit"], {"image": image.numpy(), "modality": modality.numpy()})
    return np.asarray(out).reshape(-1)


def onnx_has_cuda() -> bool:
    """Whether the installed onnxruntime can run on a GPU (onnxruntime-gpu; the `export` extra is CPU-only)."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()
