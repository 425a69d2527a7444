"""The two engines a Predictor runs a preprocessed batch with: PyTorch (`TorchBackend`) and onnxruntime
(`OnnxBackend`: a file from `ugn export`, or a PyTorch model converted in memory)."""

from __future__ import annotations

import os
from typing import Any, Protocol

import numpy as np
import torch

from unifiedgender.decision import calibrated_probs
from unifiedgender.errors import UserError
from unifiedgender.inference.onnx_io import LogitModel, onnx_has_cuda, sample_inputs, trace_onnx
from unifiedgender.runtime import inference_runtime

ONNX_TOLERANCE = 1e-4  # max |prob_male difference| accepted when converting a PyTorch model for onnxruntime


class Backend(Protocol):
    """Runs a preprocessed batch [B,C,H,W] with modality indices [B] and returns male logits [B], or [2,B]
    (the images, then their mirror images) with `mirrored`."""

    def logits(self, images: torch.Tensor, modality: torch.Tensor, mirrored: bool = False) -> np.ndarray: ...


class TorchBackend:
    """A PyTorch model in eval mode on one device: channels_last, inference_mode, autocast on CUDA.

    On a GPU it takes uint8 batches (resized and cropped on the CPU) and normalises them on the device, so a
    quarter of the bytes cross the bus; mirror images for TTA are made on the device too.
    """

    name = "torch"

    def __init__(self, model: torch.nn.Module, device: str | torch.device | None = None) -> None:
        self.runtime = inference_runtime(device)
        self.device = self.runtime.device
        self.model = self.runtime.prepare_model(model.eval())
        self.takes_uint8 = self.device.type == "cuda"  # on a CPU, float preprocessing in the decoding threads
        self.normalize: Any = None  # set by Predictor for uint8 input (training.augment.Normalize)

    def logits(self, images: torch.Tensor, modality: torch.Tensor, mirrored: bool = False) -> np.ndarray:
        return self.outputs(images, modality, mirrored)["logit"]

    def outputs(self, images: torch.Tensor, modality: torch.Tensor, mirrored: bool = False) -> dict[str, np.ndarray]:
        """Every output of the model as float arrays: `logit` [B], and `age_logits` [B,K] for multitask; with
        `mirrored`, a leading axis of 2 (the images, then their mirror images)."""
        non_blocking = self.device.type == "cuda"
        images = images.to(self.device, non_blocking=non_blocking)
        if images.dtype == torch.uint8:
            images = self.normalize(images)
        images = images.contiguous(memory_format=self.runtime.memory_format)
        modality = modality.to(self.device, non_blocking=non_blocking)
        if mirrored:
            images, modality = torch.cat([images, images.flip(-1)]), torch.cat([modality, modality])
        with torch.inference_mode(), self.runtime.autocast():
            out = self.model(images, modality)
        arrays = {key: value.float().cpu().numpy() for key, value in out.items() if key in ("logit", "age_logits")}
        arrays["logit"] = arrays["logit"].reshape(-1)
        if mirrored:
            arrays = {key: value.reshape(2, -1, *value.shape[1:]) for key, value in arrays.items()}
        return arrays


class OnnxBackend:
    """An ONNX model run with onnxruntime (inputs `image`, `modality`; output `logit`): a file from
    `ugn export`, or a PyTorch model converted in memory (on a CPU several times faster than eager PyTorch)."""

    name = "onnxruntime"

    def __init__(self, session: Any) -> None:
        self.session = session
        self.model: torch.nn.Module | None = None

    @classmethod
    def load(cls, model: str | os.PathLike[str] | bytes, device: torch.device) -> OnnxBackend:
        """A session on the CPU, or on CUDA for a GPU `device` (UserError when this onnxruntime has no CUDA)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # the same knob as PyTorch's
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # leave cores to the decoders
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if not onnx_has_cuda():
                raise UserError(
                    f"--device {device}: this onnxruntime has no CUDA provider (the `export` extra installs the CPU "
                    "build), so the .onnx model would run on the CPU; use --device cpu, predict on the GPU with the .pt "
                    "checkpoint, or replace onnxruntime with onnxruntime-gpu"
                )
            providers.insert(0, "CUDAExecutionProvider")
        source = model if isinstance(model, bytes) else str(model)
        try:
            return cls(ort.InferenceSession(source, options, providers=providers))
        except Exception as exc:  # onnxruntime's Fail/InvalidGraph/...: a broken or hostile file
            where = "the converted model" if isinstance(model, bytes) else str(model)
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            raise UserError(f"{where}: onnxruntime cannot load it ({first}); re-export it with `ugn export`") from exc

    @classmethod
    def from_torch(cls, model: torch.nn.Module, data_config: dict[str, Any]) -> OnnxBackend:
        """Convert in memory and check the result against PyTorch on a sample batch (UserError if they differ)."""
        wrapped = LogitModel(model).eval()
        sample = sample_inputs(data_config, batch=2)
        backend = cls.load(trace_onnx(wrapped, sample).SerializeToString(), torch.device("cpu"))
        with torch.inference_mode():
            want = wrapped(*sample).numpy()
        diff = float(np.max(np.abs(calibrated_probs(backend.logits(*sample)) - calibrated_probs(want))))
        if not diff <= ONNX_TOLERANCE:
            raise UserError(f"onnxruntime prob_male differs from PyTorch by {diff:.2g} (> {ONNX_TOLERANCE}); use --engine torch")
        backend.model = model  # the source module (its .spec describes the model), as on TorchBackend
        return backend

    def logits(self, images: torch.Tensor, modality: torch.Tensor, mirrored: bool = False) -> np.ndarray:
        if mirrored:
            return np.stack([self.logits(images, modality), self.logits(images.flip(-1), modality)])
        feeds = {"image": images.numpy().astype(np.float32, copy=False), "modality": modality.numpy()}
        (out,) = self.session.run(["logit"], feeds)
        return np.asarray(out, dtype=np.float32).reshape(-1)
