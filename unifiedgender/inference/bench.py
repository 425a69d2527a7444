"""`ugn bench predict`: images/s of the project's predict path against a one-image-at-a-time PIL loop and
against the model's own ceiling.

The baseline is how the original UnifiedGenderNet predict script works: for each file, open it with PIL,
apply the eval transform, run the model on a batch of one under `torch.no_grad()`. The ceiling is the same
model on ready-made batches already on the device (no decoding, no transfer): what the model alone allows.
All run in one process on the same model, the same files (read once beforehand so all find them in the page
cache) and the same preprocessing; the ratios are the figures that matter, not the absolute speed.
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from unifiedgender.errors import UserError

DEFAULT_ARCH = "umcc"
DEFAULT_BACKBONE = "mobilenetv2_100"
WARMUP_IMAGES = 8


@dataclass
class PredictBenchResult:
    """Throughput (best round, images/s) of the baseline loop and of the predictor with each engine."""

    model: str
    device: str
    n_images: int
    batch_size: int
    workers: int
    threads: int
    rounds: int
    baseline_images_per_s: float
    engines_images_per_s: dict[str, float]
    max_abs_diff: float
    ceiling_images_per_s: dict[str, float]  # per engine: the model on ready batches on the device

    def speedup(self, engine: str) -> float:
        return self.engines_images_per_s[engine] / self.baseline_images_per_s

    def of_ceiling(self, engine: str) -> float:
        return self.engines_images_per_s[engine] / self.ceiling_images_per_s[engine]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "speedup": {e: self.speedup(e) for e in self.engines_images_per_s},
                "of_ceiling": {e: self.of_ceiling(e) for e in self.engines_images_per_s}}


def bench_images(folder: str | os.PathLike[str] | None, n_images: int, recursive: bool = True) -> list[str]:
    """Up to `n_images` image files from `folder` (sorted); without a folder, synthetic 250x250 JPEGs."""
    from unifiedgender.inference.inputs import iter_folder

    if n_images < 1:
        raise UserError(f"--n-images {n_images} must be >= 1")
    if folder is None:
        return synthetic_images(Path(tempfile.mkdtemp(prefix="ugn-bench-")), n_images)
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--folder {folder}: not a folder; give a folder of images")
    paths = []
    for path in iter_folder(folder, recursive):
        paths.append(path)
        if len(paths) == n_images:
            break
    if not paths:
        raise UserError(f"--folder {folder}: no image files found (looked for .jpg, .png, ...)")
    return paths


def synthetic_images(folder: Path, n: int, size: int = 250) -> list[str]:
    """`n` smooth random JPEG photos of `size` px (LFW's size) for a benchmark without data."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    x = np.tile(np.linspace(0, 1, size), (size, 1))
    paths = []
    for i in range(n):
        a, b, c = rng.random(3) * 255
        array = np.stack([a * x, b * x.T, np.full_like(x, c)], axis=2)
        array = np.clip(array + rng.normal(0, 12, array.shape), 0, 255).astype(np.uint8)
        path = folder / f"synthetic_{i:05d}.jpg"
        Image.fromarray(array).save(path, quality=90)
        paths.append(str(path))
    return paths


def baseline_loop(model: torch.nn.Module, transform: Any, paths: Sequence[str], modality: int) -> np.ndarray:
    """The original predict script: open, transform, forward, one image at a time (on the model's device)."""
    device = next(model.parameters()).device
    index = torch.tensor([modality], dtype=torch.long, device=device)
    probs = np.empty(len(paths))
    with torch.no_grad():
        for i, path in enumerate(paths):
            image = Image.open(path).convert("RGB")
            batch = transform(image).unsqueeze(0).to(device)
            probs[i] = torch.sigmoid(model(batch, index)["logit"]).item()
    return probs


def model_ceiling(backend: Any, data_config: dict[str, Any], n_images: int, batch_size: int) -> float:
    """Images/s of the backend on one ready batch already on its device (random uint8 images when it takes
    them, else normalised floats), repeated for `n_images`: the rate the model itself allows."""
    channels, height, width = (int(v) for v in data_config["input_size"])
    device = getattr(backend, "device", torch.device("cpu"))
    shape = (batch_size, channels, height, width)
    if getattr(backend, "takes_uint8", False):
        images = torch.randint(0, 256, shape, dtype=torch.uint8, device=device)
    else:
        images = torch.randn(shape, device=device)
    modality = torch.zeros(batch_size, dtype=torch.long, device=device)
    backend.logits(images, modality)  # warm-up (cudnn autotuning, onnxruntime allocations)
    batches = max(1, -(-n_images // batch_size))
    started = time.perf_counter()
    for _ in range(batches):
        backend.logits(images, modality)  # returns host numbers: every batch is finished when it returns
    return batches * batch_size / (time.perf_counter() - started)


def run_predict_benchmark(
    paths: Sequence[str],
    checkpoint: str | os.PathLike[str] | None = None,
    *,
    arch: str = DEFAULT_ARCH,
    backbone: str = DEFAULT_BACKBONE,
    batch_size: int = 64,
    workers: int | None = None,
    modality: str = "face",
    engines: Sequence[str] | None = None,
    rounds: int = 3,
    device: str = "cpu",
) -> PredictBenchResult:
    """Time the baseline loop, `Predictor.predict_paths` (each engine) and each engine's model ceiling on the
    same files and model; engines default to torch and onnxruntime on a CPU, torch on a GPU.

    The paths alternate within each of `rounds` rounds and each keeps its best round: on a shared machine
    other processes only ever slow a run down.
    """
    from unifiedgender.runtime import resolve_device

    from unifiedgender.data.manifest import MODALITIES
    from unifiedgender.data.transforms import build_eval_transform
    from unifiedgender.inference.predictor import Predictor, check_modality

    if rounds < 1:
        raise UserError(f"--rounds {rounds} must be >= 1")
    if checkpoint is not None:
        from unifiedgender.checkpoint import load_checkpoint

        model, info = load_checkpoint(checkpoint)
        name = str(info.get("tag") or Path(checkpoint).name)
    else:
        from unifiedgender.models import create_model

        model = create_model(arch, backbone, pretrained="none").eval()
        name = f"{arch} {backbone} (random weights)"
    check_modality(modality, model.modalities)
    target = resolve_device(device)
    engines = tuple(engines or (("torch", "onnxruntime") if target.type == "cpu" else ("torch",)))
    for path in paths:  # every path then reads from the page cache
        Path(path).read_bytes()
    transform = build_eval_transform(model.data_config)
    index = MODALITIES.index(modality)
    predictors = {
        engine: Predictor.from_model(copy.deepcopy(model), tag=name, device=target, engine=engine,
                                     batch_size=batch_size, workers=workers)
        for engine in engines
    }
    model = model.to(target)
    baseline_loop(model, transform, paths[:WARMUP_IMAGES], index)
    for predictor in predictors.values():
        list(predictor.predict_paths(paths[: min(len(paths), batch_size)], modality))

    best: dict[str, float] = {}
    diff = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        reference = baseline_loop(model, transform, paths, index)
        best["baseline"] = max(best.get("baseline", 0.0), len(paths) / (time.perf_counter() - started))
        for engine, predictor in predictors.items():
            started = time.perf_counter()
            probs = np.array([r["prob_male"] for r in predictor.predict_paths(paths, modality)], dtype=float)
            best[engine] = max(best.get(engine, 0.0), len(paths) / (time.perf_counter() - started))
            diff = max(diff, float(np.nanmax(np.abs(reference - probs))))
    ceiling = {engine: max(model_ceiling(p.backend, p.data_config, len(paths), batch_size) for _ in range(rounds))
               for engine, p in predictors.items()}
    return PredictBenchResult(
        model=name, device=str(target), n_images=len(paths), batch_size=batch_size,
        workers=next(iter(predictors.values())).workers if predictors else 0, threads=torch.get_num_threads(),
        rounds=rounds, baseline_images_per_s=best.pop("baseline"), engines_images_per_s=best, max_abs_diff=diff,
        ceiling_images_per_s=ceiling,
    )
