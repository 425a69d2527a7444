"""`ugn bench train`: training throughput of three input paths with the same model, batch and precision.

(a) synthetic  random tensors already on the device: the ceiling of the model itself
(b) project    decoded uint8 cache -> batch to the device (side-stream prefetch) -> batched device augmentation (`Af`)
(c) PIL        a conventional pipeline: PIL decode + torchvision transforms per image in N DataLoader workers
Images for (b) and (c) are synthetic JPEGs written to a temporary folder (or the files of --manifest).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unifiedgender.data.cache import Geometry, build_cache
from unifiedgender.data.dataset import CachedBatches, make_loader
from unifiedgender.runtime import Runtime, init_runtime
from unifiedgender.training.augment import DeviceAugment, Normalize
from unifiedgender.training.loop import train_step
from unifiedgender.training.losses import TrainingLoss

GPU_DEFAULTS = {"backbone": "resnet18", "batch_size": 256, "image_size": 224, "steps": 50, "workers": 4}
CPU_DEFAULTS = {"backbone": "resnet18", "batch_size": 16, "image_size": 64, "steps": 5, "workers": 2}


@dataclass
class PathResult:
    name: str
    images_per_s: float
    seconds: float
    images: int


def _settings(device: torch.device, **given: Any) -> dict[str, Any]:
    defaults = GPU_DEFAULTS if device.type == "cuda" else CPU_DEFAULTS
    return {k: (given.get(k) if given.get(k) is not None else v) for k, v in defaults.items()}


def write_synthetic_images(folder: Path, count: int, size: int = 512) -> list[str]:
    """`count` JPEGs of `size` px (smooth noise, so they compress like photos)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        small = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((size, size), Image.BILINEAR)
        path = folder / f"img_{i:05d}.jpg"
        img.save(path, quality=90)
        paths.append(str(path))
    return paths


def _timed(run_step, batches: Iterator[Any], steps: int, warmup: int, batch_size: int, rt: Runtime, name: str) -> PathResult:
    for _ in range(warmup):
        run_step(next(batches))
    _sync(rt)
    start = time.perf_counter()
    for _ in range(steps):
        run_step(next(batches))
    _sync(rt)
    seconds = time.perf_counter() - start
    return PathResult(name, steps * batch_size / seconds, seconds, steps * batch_size)


def _sync(rt: Runtime) -> None:
    if rt.device.type == "cuda":
        torch.cuda.synchronize(rt.device)


def _forever(loader) -> Iterator[Any]:
    while True:
        yield from loader


class _PilDataset(torch.utils.data.Dataset):
    """Decode + augment each image with PIL and torchvision transforms (the conventional way)."""

    def __init__(self, paths: list[str], length: int, transform: Any) -> None:
        self.paths, self.length, self.transform = paths, length, transform

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from unifiedgender.data.images import load_image

        return self.transform(load_image(self.paths[i % len(self.paths)])), i % 2


def run_train_bench(
    arch: str = "classifier", backbone: str | None = None, batch_size: int | None = None, image_size: int | None = None,
    steps: int | None = None, device: str = "auto", precision: str = "auto", workers: int | None = None,
    warmup: int = 2, rounds: int = 2, source_size: int = 512, log: Any = print,
) -> dict[str, Any]:
    """Measure (a), (b) and (c) in `rounds` interleaved rounds; return settings, the best images/s per path and
    the ratios b/a and b/c."""
    from torchvision import transforms as T

    from unifiedgender.models import create_model
    from unifiedgender.training.data import LOADER_WORKERS

    rt = init_runtime(device=device, precision=precision)
    s = _settings(rt.device, backbone=backbone, batch_size=batch_size, image_size=image_size, steps=steps, workers=workers)
    bs, size = s["batch_size"], s["image_size"]
    model = create_model(arch, s["backbone"], pretrained="none", image_size=size)
    data_config = model.data_config
    channels = int(data_config["input_size"][0])
    model = rt.prepare_model(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler, criterion = rt.grad_scaler(), TrainingLoss("bce")
    normalize = Normalize(data_config["mean"], data_config["std"], channels, rt.device, rt.memory_format)
    model.train()
    log(f"bench train: {arch}/{s['backbone']} batch {bs} at {size}px, {rt.describe()}, {s['steps']} timed steps, "
        f"{s['workers']} workers")

    def step_on(images: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        train_step(model, images, batch, criterion, optimizer, scaler, rt)

    # (a) synthetic tensors on the device
    synthetic = {"label": torch.randint(0, 2, (bs,), device=rt.device).float(),
                 "modality": torch.zeros(bs, dtype=torch.long, device=rt.device)}
    images = torch.randn(bs, channels, size, size, device=rt.device).contiguous(memory_format=rt.memory_format)
    paths_to_time = {"synthetic": (lambda _: step_on(images, synthetic), iter(int, 1))}

    with tempfile.TemporaryDirectory(prefix="ugn-bench-") as tmp:
        n_files = min(bs * (s["steps"] + warmup), 2048)
        started = time.perf_counter()
        paths = write_synthetic_images(Path(tmp), n_files, source_size)
        log(f"wrote {n_files} synthetic {source_size}px JPEGs in {time.perf_counter() - started:.1f}s")
        length = bs * (s["steps"] + warmup)

        # (b) decoded cache + batched device augmentation
        started = time.perf_counter()
        cache = build_cache(paths, Geometry.from_data_config(data_config), mode="memory", workers=max(s["workers"], 1))
        build_seconds = time.perf_counter() - started
        log(f"decoded cache: {n_files} images in {build_seconds:.1f}s (once per data set; reused across epochs and runs)")
        index = np.arange(length) % n_files
        dataset = CachedBatches(cache.images, np.arange(n_files) % 2, np.zeros(n_files, dtype=np.int64), indices=index)
        loader, _ = make_loader(dataset, bs, shuffle=True, seed=0, drop_last=True,
                                workers=min(s["workers"], LOADER_WORKERS), pin_memory=rt.pin_memory)
        augment = DeviceAugment("full", normalize, seed=0)

        def project_step(batch: dict[str, torch.Tensor]) -> None:
            images, _, _ = augment(batch["image"], batch["modality"])
            step_on(images, batch)

        paths_to_time["project"] = (project_step, rt.prefetch(_forever(loader)))  # as train_one_epoch gets them

        # (c) PIL + torchvision transforms per image in DataLoader workers
        transform = T.Compose([
            T.Grayscale(1) if channels == 1 else T.Lambda(lambda im: im),
            T.RandomResizedCrop(size, scale=(0.5, 1.0), antialias=True), T.RandomHorizontalFlip(),
            T.ColorJitter(0.2, 0.2, 0.2), T.RandomRotation(10), T.ToTensor(),
            T.Normalize(data_config["mean"], data_config["std"]),
        ])
        pil_loader = torch.utils.data.DataLoader(
            _PilDataset(paths, length, transform), batch_size=bs, shuffle=True, num_workers=s["workers"],
            pin_memory=rt.pin_memory, drop_last=True, persistent_workers=s["workers"] > 0)

        def pil_step(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
            images, labels = rt.to_device(batch)
            step_on(images.contiguous(memory_format=rt.memory_format),
                    {"label": labels.float(), "modality": torch.zeros_like(labels)})

        paths_to_time["pil"] = (pil_step, _forever(pil_loader))

        # rounds a, b, c, a, b, c, ...: the best round of each path, so load changes and warm-up hit all alike
        best: dict[str, PathResult] = {}
        for _ in range(rounds):
            for name, (run_step, batches) in paths_to_time.items():
                result = _timed(run_step, batches, s["steps"], warmup, bs, rt, name)
                if name not in best or result.images_per_s > best[name].images_per_s:
                    best[name] = result
        results = list(best.values())

    rates = {r.name: r.images_per_s for r in results}
    return {
        "device": str(rt.device), "device_name": torch.cuda.get_device_name(rt.device) if rt.device.type == "cuda" else "cpu",
        "precision": rt.precision, "channels_last": rt.channels_last, "arch": arch, **s,
        "cache_build_seconds": build_seconds, "rounds": rounds, "results": [r.__dict__ for r in results],
        "ratio_project_vs_synthetic": rates["project"] / rates["synthetic"],
        "ratio_project_vs_pil": rates["project"] / rates["pil"],
    }
