"""Inference: streaming batched prediction over files, folders and manifests; export to ONNX/TorchScript."""

from unifiedgender.inference.manifest_predictions import predict_manifest
from unifiedgender.inference.predictor import Predictor

__all__ = ["Predictor", "predict_manifest"]
