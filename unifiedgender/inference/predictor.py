"""Predict sex/gender for images, files and folders with a checkpoint or an exported ONNX model.

`Predictor.from_checkpoint(path)` loads a ugn checkpoint (or an `.onnx` file from `ugn export`) with the
preprocessing stored in it. `predict_paths` streams one record per path in input order with constant memory:
paths are decoded and transformed by a bounded thread pool a few batches ahead of the model, which runs
batched: on a CPU with onnxruntime (the PyTorch model converted in memory and checked), on a GPU with PyTorch
(`torch.inference_mode`, channels_last, autocast). A file that cannot be read becomes a record with `status`
set to the reason; everything else is predicted. Probabilities are calibrated with the temperature stored
with the model, and the predicted class (`pred`) uses its stored threshold unless one is given (unifiedgender.decision).
"""

from __future__ import annotations

import functools
import math
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from unifiedgender.data.ages import BUCKET_LABELS, age_buckets
from unifiedgender.data.images import DEFAULT_MAX_PIXELS, ImageReadError, load_image, to_mode
from unifiedgender.data.manifest import MODALITIES
from unifiedgender.decision import Decision, calibrated_probs
from unifiedgender.errors import UserError
from unifiedgender.inference.backends import Backend, OnnxBackend, TorchBackend
from unifiedgender.inference.onnx_io import onnx_has_cuda, read_onnx_metadata
from unifiedgender.runtime import resolve_device

RECORD_FIELDS = ("path", "modality", "prob_male", "prob_female", "pred", "confidence", "status")  # pred: the predicted class
ENGINES = ("auto", "torch", "onnxruntime")
NON_FINITE = "model output is not a number (NaN or infinite); the model's weights are broken: retrain or re-export it"
PREFETCH_BATCHES = 2  # batches decoded ahead of the model: bounds memory to about (1 + 2) batches of tensors


@dataclass
class _Item:
    path: str
    modality: str | None


def check_modality(modality: str | None, allowed: Sequence[str] = MODALITIES, where: str = "--modality") -> None:
    """Refuse an unknown modality, one the model was not built for, and a missing one for a conditioned model
    (one that accepts only some modalities: UMCC F1 and MAG)."""
    conditioned = tuple(allowed) != MODALITIES
    if modality is None:
        if conditioned:
            raise UserError(
                f"this model is conditioned on the modality; give {where} ({'|'.join(allowed)}) "
                "or a manifest with a 'modality' column"
            )
        return
    if modality not in MODALITIES:
        raise UserError(f"unknown modality '{modality}' ({where}); use one of {', '.join(MODALITIES)}")
    if modality not in allowed:
        raise UserError(f"this model takes {' or '.join(allowed)} images, not '{modality}' ({where}); use a model trained for {modality}")


class Predictor:
    """Batched, streaming prediction with the preprocessing of the model's training (its data_config)."""

    def __init__(
        self,
        backend: Backend,
        data_config: dict[str, Any],
        *,
        modalities: Sequence[str] = MODALITIES,
        tag: str = "",
        batch_size: int = 64,
        workers: int | None = None,
        tta: bool = False,
        decision: Decision | None = None,
        threshold: float | None = None,
        threshold_policy: str | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        with_age: bool = False,
    ) -> None:
        """`decision`: the model's stored temperature and thresholds (default: temperature 1, threshold 0.5);
        `threshold` overrides its threshold, `threshold_policy` picks another of its stored ones. `with_age`: records
        also carry `age_group` (the Adience group) when the backend gives age outputs (a multitask model run with
        PyTorch)."""
        from unifiedgender.data.transforms import build_eval_transform

        if batch_size < 1:
            raise UserError(f"batch size {batch_size} must be >= 1")
        if workers is not None and workers < 1:
            raise UserError(f"workers {workers} must be >= 1")
        self.backend = backend
        self.engine = getattr(backend, "name", type(backend).__name__)
        self.data_config = dict(data_config)
        self.transform = build_eval_transform(self.data_config)
        self.mode = "L" if int(self.data_config["input_size"][0]) == 1 else "RGB"
        self.modalities = tuple(modalities)
        self.tag = tag
        self.batch_size = batch_size
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.tta = tta
        self.decision = decision or Decision()
        self.threshold_choice = self.decision.threshold(threshold, threshold_policy)
        self.threshold = self.threshold_choice.value
        self.max_pixels = max_pixels
        self.with_age = with_age
        self.uint8 = bool(getattr(backend, "takes_uint8", False))
        if self.uint8:
            from unifiedgender.training.augment import Normalize

            channels = int(self.data_config["input_size"][0])
            backend.normalize = Normalize(self.data_config["mean"], self.data_config["std"], channels, backend.device)

    # ----------------------------------------------------------------------------------------- construction
    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike[str], device: str | torch.device | None = None, **options: Any
    ) -> Predictor:
        """Load a ugn checkpoint (`.pt`) or an exported `.onnx` model; options as in `Predictor(...)`."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"checkpoint not found: {path}; train one with `ugn train` or fetch one with `ugn download`")
        if path.suffix.lower() == ".onnx":
            return cls.from_onnx(path, device=device, **options)
        from unifiedgender.checkpoint import load_checkpoint

        model, info = load_checkpoint(path)
        return cls.from_model(
            model,
            data_config=info["data_config"],
            tag=str(info.get("tag") or ""),
            device=device,
            decision=Decision.from_dict(info.get("decision"), str(path)),
            **options,
        )

    @classmethod
    def from_model(
        cls,
        model: torch.nn.Module,
        data_config: dict[str, Any] | None = None,
        *,
        tag: str = "",
        device: str | torch.device | None = None,
        engine: str = "auto",
        **options: Any,
    ) -> Predictor:
        """Wrap an in-memory model (`model(images, modality) -> {"logit"}`); data_config defaults to its own, the
        accepted modalities are its `modalities` (all for a module that states none).

        engine: "torch" (eager PyTorch), "onnxruntime" (converted in memory, CPU), or "auto": onnxruntime on a
        CPU when the conversion succeeds and matches PyTorch, else PyTorch (always PyTorch on a GPU).
        """
        if engine not in ENGINES:
            raise UserError(f"unknown engine '{engine}'; use one of {', '.join(ENGINES)}")
        config = data_config if data_config is not None else getattr(model, "data_config", None)
        if config is None:
            raise UserError("the model has no data_config; pass the preprocessing (input_size, mean, std, ...)")
        backend: Backend | None = None
        on_cpu = resolve_device(device).type == "cpu"
        # the in-memory ONNX graph returns the gender logit only: age predictions need PyTorch
        age_wanted = bool(options.get("with_age")) and hasattr(model, "age_head")
        if engine == "onnxruntime" or (engine == "auto" and on_cpu and not age_wanted):
            if not on_cpu:
                raise UserError("--engine onnxruntime converts for the CPU; use --device cpu or --engine torch")
            try:
                backend = OnnxBackend.from_torch(model.cpu().eval(), dict(config))
            except Exception:  # auto: any conversion failure falls back to PyTorch (explicit engine: re-raised)
                if engine == "onnxruntime":
                    raise
        if backend is None:
            backend = TorchBackend(model, device)
        modalities = getattr(model, "modalities", MODALITIES)
        return cls(backend, config, modalities=modalities, tag=tag, **options)

    @classmethod
    def from_onnx(
        cls, path: str | os.PathLike[str], device: str | torch.device | None = None, engine: str = "auto", **options: Any
    ) -> Predictor:
        """Load an ONNX model written by `ugn export`; the preprocessing comes from its metadata."""
        if engine == "torch":
            raise UserError(f"{path}: an exported ONNX model runs with onnxruntime; use the .pt checkpoint for --engine torch")
        meta = read_onnx_metadata(path)
        target = resolve_device(device)
        if device in (None, "auto") and target.type == "cuda" and not onnx_has_cuda():
            target = torch.device("cpu")  # auto: the CPU build of onnxruntime runs on the CPU (docs/inference.md)
        return cls(
            OnnxBackend.load(path, target),
            meta["data_config"],
            modalities=meta["modalities"],
            tag=meta["tag"],
            decision=meta["decision"],
            **options,
        )

    # ------------------------------------------------------------------------------------------- prediction
    def predict_images(self, images: Sequence[Image.Image], modality: str | None = None, framed: bool = False) -> np.ndarray:
        """prob_male for in-memory PIL images of any mode (all of one modality); `framed`: the images are face
        chips already in the canonical framing, so the model's own face framing is skipped."""
        check_modality(modality, self.modalities, where="modality")
        if self.uint8:
            prepare = functools.partial(self.transform.uint8, framed=framed)
        else:
            prepare = self.transform.prepare if framed else self.transform
        probs = np.empty(len(images), dtype=np.float64)
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            batch = torch.stack([prepare(to_mode(img, self.mode)) for img in chunk])
            probs[start : start + len(chunk)] = self._scores(batch, [modality] * len(chunk))[0]
        return probs

    def predict_paths(
        self, paths: Iterable[str | os.PathLike[str]], modality: str | None | Sequence[str | None] = None
    ) -> Iterator[dict[str, Any]]:
        """One record per path, in order, streamed; `modality` is one value for all or one per path."""
        if modality is None or isinstance(modality, str):
            check_modality(modality, self.modalities)
            items: Iterable[_Item] = (_Item(os.fspath(p), modality) for p in paths)
        else:
            modalities = list(modality)
            for index, value in enumerate(modalities):
                check_modality(value, self.modalities, where=f"modality of input {index + 1}")
            paths = list(paths)
            if len(paths) != len(modalities):
                raise UserError(f"{len(paths)} paths but {len(modalities)} modalities; give one per path")
            items = (_Item(os.fspath(p), m) for p, m in zip(paths, modalities))
        for batch in self._decoded_batches(items):
            yield from self._predict_batch(batch)

    def record(self, path: str, modality: str | None, prob_male: float | None, status: str = "ok",
               age_group: str | None = None) -> dict[str, Any]:
        """The output record for one image (probabilities None when it failed, or status NON_FINITE when the model's
        output was not a number); `age_group` only `with_age`."""
        extra = {"age_group": age_group} if self.with_age else {}
        if prob_male is not None and not math.isfinite(prob_male):
            prob_male, status = None, NON_FINITE
        if prob_male is None:
            return {**dict(zip(RECORD_FIELDS, (path, modality or "", None, None, "", None, status))), **extra}
        male = prob_male >= self.threshold
        confidence = prob_male if male else 1.0 - prob_male
        return {**dict(
            zip(RECORD_FIELDS, (path, modality or "", prob_male, 1.0 - prob_male, "male" if male else "female", confidence, status))
        ), **extra}

    # ------------------------------------------------------------------------------------------- internals
    def _load(self, path: str) -> torch.Tensor | str:
        """The preprocessed tensor for one file, or the reason it cannot be read."""
        try:
            image = load_image(path, mode=self.mode, max_pixels=self.max_pixels)
        except ImageReadError as exc:
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - one file's failure is its row's status; the batch goes on
            return f"cannot read: {type(exc).__name__}: {exc}"
        try:
            return self.transform.uint8(image) if self.uint8 else self.transform(image)
        except Exception as exc:  # noqa: BLE001 - e.g. a 1-pixel image that cannot be resized
            return f"cannot preprocess: {exc}"

    def _decoded_batches(self, items: Iterable[_Item]) -> Iterator[list[tuple[_Item, torch.Tensor | str]]]:
        """Batches of (item, tensor or reason), decoded by a thread pool at most PREFETCH_BATCHES ahead."""
        pending: deque[list[tuple[_Item, Future]]] = deque()
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ugn-decode") as pool:
            current: list[tuple[_Item, Future]] = []
            for item in items:
                current.append((item, pool.submit(self._load, item.path)))
                if len(current) == self.batch_size:
                    pending.append(current)
                    current = []
                    if len(pending) > PREFETCH_BATCHES:
                        yield _resolve(pending.popleft())
            if current:
                pending.append(current)
            while pending:
                yield _resolve(pending.popleft())

    def _predict_batch(self, batch: list[tuple[_Item, torch.Tensor | str]]) -> Iterator[dict[str, Any]]:
        ok = [(item, tensor) for item, tensor in batch if isinstance(tensor, torch.Tensor)]
        probs: dict[int, float] = {}
        groups: dict[int, str | None] = {}
        if ok:
            stacked = torch.stack([tensor for _, tensor in ok])
            if getattr(self.backend, "device", torch.device("cpu")).type == "cuda":
                stacked = stacked.pin_memory()
            values, ages = self._scores(stacked, [item.modality for item, _ in ok])
            probs = {id(item): float(p) for (item, _), p in zip(ok, values)}
            groups = {id(item): None if ages is None else ages[i] for i, (item, _) in enumerate(ok)}
        for item, result in batch:
            if isinstance(result, str):
                yield self.record(item.path, item.modality, None, result)
            else:
                yield self.record(item.path, item.modality, probs[id(item)], age_group=groups[id(item)])

    def _scores(self, images: torch.Tensor, modalities: Sequence[str | None]) -> tuple[np.ndarray, list[str] | None]:
        """Calibrated prob_male for a preprocessed batch and, `with_age` on a model with an age head, the Adience
        group of each image (with TTA both are averaged over the image and its mirror image). prob_male is NaN
        where the model's output was not a number: callers report NON_FINITE."""
        index = torch.tensor([MODALITIES.index(m) if m else 0 for m in modalities], dtype=torch.long)
        run = getattr(self.backend, "outputs", None) if self.with_age else None
        outputs = run(images, index, self.tta) if run else {"logit": self.backend.logits(images, index, self.tta)}
        probs = calibrated_probs(outputs["logit"], self.decision.temperature)
        probs = probs.mean(axis=0) if self.tta else probs
        if "age_logits" not in outputs:
            return probs, None
        ages = outputs["age_logits"]
        return probs, _age_groups(np.mean([_age_scores(a) for a in ages], axis=0) if self.tta else _age_scores(ages))


def _resolve(batch: list[tuple[_Item, Future]]) -> list[tuple[_Item, torch.Tensor | str]]:
    return [(item, future.result()) for item, future in batch]


def _age_scores(age_logits: np.ndarray) -> np.ndarray:
    """Bucket probabilities [B,K] (softmax) for a bucket head; predicted years [B,1] for a regression head."""
    if age_logits.shape[1] == 1:
        return age_logits.astype(np.float64)
    shifted = np.exp(age_logits - age_logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _age_groups(scores: np.ndarray) -> list[str]:
    """Adience group labels from `_age_scores` output: the most probable bucket, or the bucket of the years."""
    index = age_buckets(scores[:, 0]) if scores.shape[1] == 1 else scores.argmax(axis=1)
    return [BUCKET_LABELS[i] if scores.shape[1] in (1, len(BUCKET_LABELS)) else str(i) for i in index]
