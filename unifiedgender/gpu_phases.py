"""The measuring phases of `ugn bench all` (unifiedgender.gpu_check runs them and writes the report) and the
settings that size them: the training data path bench, the sync count, the predict bench, and a short real
training with `ugn evaluate` and the bf16-vs-fp32 agreement of its model."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unifiedgender.errors import UserError
from unifiedgender.training.bench import GPU_DEFAULTS


@dataclass(frozen=True)
class CheckSettings:
    """Sizes of every phase (GPU_SETTINGS for the real check, DRY_SETTINGS for the CPU dry run)."""

    device: str
    backbones: tuple[str, ...] = ("resnet18", "tf_efficientnetv2_s")
    batch_size: int = GPU_DEFAULTS["batch_size"]
    image_size: int = GPU_DEFAULTS["image_size"]
    steps: int = 20
    workers: int = GPU_DEFAULTS["workers"]
    rounds: int = 2
    source_size: int = 512
    predict_images: int = 2048
    predict_batch: int = 256
    predict_backbone: str = "resnet18"
    train_backbone: str = "tf_efficientnet_lite0.in1k"
    pretrained: str = "default"
    train_batch: int = 128
    epochs: int = 3
    per_subject: int = 2
    max_subjects: int = 0
    runs: tuple[tuple[str, bool], ...] = (("bf16", False), ("bf16", True), ("fp32", False))
    evaluated_runs: int = 3  # the first N runs get `ugn evaluate` (a process of its own each)
    bench_precision: str = "bf16"
    sync_steps: int = 20


GPU_SETTINGS = CheckSettings("cuda")


DRY_SETTINGS = CheckSettings(
    "cpu", batch_size=4, image_size=32, steps=1, workers=1, rounds=1, source_size=48, predict_images=8,
    predict_batch=4, train_backbone="test_resnet.r160_in1k", pretrained="none", train_batch=8, epochs=1,
    max_subjects=40, runs=(("bf16", False), ("fp32", False)), evaluated_runs=1, bench_precision="fp32", sync_steps=3,
)


def environment(settings: CheckSettings) -> dict[str, Any]:
    """Versions and the device's facts (nvidia-smi's name, memory and driver where it exists)."""
    import torch

    from unifiedgender.runtime import cuda_half_precision

    facts: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                             "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                             "host": platform.node(), "cpu_count": _cpu_count()}
    if settings.device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(settings.device))
        facts.update(device=props.name, memory_gb=round(props.total_memory / 2**30, 1),
                     capability=f"{props.major}.{props.minor}", multiprocessors=props.multi_processor_count,
                     bf16_native=cuda_half_precision() == "bf16")
        try:
            facts["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError) as exc:
            facts["nvidia_smi"] = f"unavailable ({exc})"
    else:
        facts.update(device="cpu", processor=platform.processor())
    return facts


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def train_bench(settings: CheckSettings, backbone: str) -> dict[str, Any]:
    """`ugn bench train` for one backbone at the check's settings."""
    from unifiedgender.training.bench import run_train_bench

    s = settings
    return run_train_bench("classifier", backbone, s.batch_size, s.image_size, s.steps, s.device, s.bench_precision,
                           s.workers, rounds=s.rounds, source_size=s.source_size, log=lambda _: None)


def count_syncs(settings: CheckSettings) -> dict[str, Any]:
    """Training steps of the real loop (decoded uint8 batches, `Af` augmentation, bf16) under CUDA's sync
    debug mode; every synchronising call warns and is counted. On a CPU the loop runs and nothing is counted."""
    import numpy as np
    import torch

    from unifiedgender.data.dataset import CachedBatches, make_loader
    from unifiedgender.models import create_model
    from unifiedgender.runtime import init_runtime
    from unifiedgender.training.augment import DeviceAugment, Normalize
    from unifiedgender.training.loop import train_one_epoch
    from unifiedgender.training.losses import TrainingLoss

    s = settings
    rt = init_runtime(device=s.device, precision="bf16")
    model = rt.prepare_model(create_model("classifier", "resnet18", pretrained="none"))
    n = s.batch_size * s.sync_steps
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (min(n, 2048), 3, s.image_size, s.image_size), dtype=np.uint8)
    data = CachedBatches(images, np.arange(len(images)) % 2, np.zeros(len(images), dtype=np.int64),
                         indices=np.arange(n) % len(images))
    loader, sampler = make_loader(data, s.batch_size, shuffle=True, seed=0, drop_last=True, workers=min(s.workers, 2),
                                  pin_memory=rt.pin_memory)
    sampler.set_epoch(0)
    normalize = Normalize((0.5,) * 3, (0.25,) * 3, 3, rt.device, rt.memory_format)
    args = (DeviceAugment("full", normalize, seed=0), TrainingLoss("bce"),
            torch.optim.AdamW(model.parameters(), lr=1e-4), rt.grad_scaler(), rt)
    train_one_epoch(model, loader, *args, read_every=10**9)  # warm-up epoch: cudnn autotuning, allocator
    sampler.set_epoch(1)
    cuda = rt.device.type == "cuda"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if cuda:
            torch.cuda.set_sync_debug_mode("warn")
        try:
            train_one_epoch(model, loader, *args, read_every=10**9)
        finally:
            if cuda:
                torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)]
    return {"steps": len(loader), "syncs": len(syncs) if cuda else None,
            "expected": "1 (the sums read once at the end of the epoch)", "first": syncs[:5],
            "note": "" if cuda else "not measurable on a CPU"}


def predict_bench(settings: CheckSettings, data: Path | None) -> dict[str, Any]:
    """`ugn bench predict` on the device: the torch engine against its synthetic ceiling (LFW files if present)."""
    from unifiedgender.inference.bench import bench_images, run_predict_benchmark

    s = settings
    folder = data / "lfw-deepfunneled" if data else None
    paths = bench_images(folder, s.predict_images)
    result = run_predict_benchmark(paths, arch="classifier", backbone=s.predict_backbone, batch_size=s.predict_batch,
                                   workers=min(8, max(s.workers, 1) * 2), rounds=s.rounds, device=s.device,
                                   engines=("torch",))
    return {**result.as_dict(), "images": str(folder) if folder else "synthetic JPEGs"}


def _manifests(settings: CheckSettings, data: Path | None, work: Path) -> tuple[Path, Path, Path]:
    """train/val/test manifests: LFW (or the sample faces) capped per subject and split by subject."""
    from unifiedgender.data.manifest import read_manifest
    from unifiedgender.data.split import split_manifest, write_splits
    from unifiedgender.data.subset import subset_manifest

    if data is not None:
        from unifiedgender.data.importers import import_dataset

        frame = import_dataset("lfw", data)[0].frame
    else:
        from unifiedgender.sample import sample_manifest_path

        frame = read_manifest(sample_manifest_path())
        frame = frame[frame["modality"] == "face"].reset_index(drop=True)
    frame = subset_manifest(frame, per_subject=settings.per_subject, max_subjects=settings.max_subjects, seed=0)
    parts = split_manifest(frame, (0.7, 0.15, 0.15), seed=0)
    train, val, test = (path.resolve() for path in write_splits(parts, work / "split"))
    return train, val, test


def real_training(settings: CheckSettings, data: Path | None, work: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Each (precision, compile) run: train, `ugn evaluate` on the test split (a failing run, e.g. a compiler
    missing for --compile, is recorded and the next one runs); then bf16-vs-fp32 agreement of the first run."""
    s = settings
    train, val, test = _manifests(s, data, work)
    runs: dict[str, Any] = {}
    pretrained = s.pretrained
    for number, (precision, compiled) in enumerate(s.runs):
        name = f"{precision}{'_compile' if compiled else ''}"
        try:
            runs[name], pretrained = _training_run(s, name, precision, compiled, pretrained, (train, val), work, log)
            runs[name]["test"] = _evaluate(work / name, test, s.device) if number < s.evaluated_runs else None
        except Exception as exc:  # noqa: BLE001 - recorded; the other runs still say something
            runs[name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "test": None}
            log(f"training run {name} failed: {runs[name]['error']}")
    first = work / f"{s.runs[0][0]}{'_compile' if s.runs[0][1] else ''}"
    return {"manifests": {"train": str(train), "val": str(val), "test": str(test)}, "runs": runs,
            "bf16_vs_fp32": precision_agreement(first / "best.pt", val, s.device)}


def _training_run(s: CheckSettings, name: str, precision: str, compiled: bool, pretrained: str,
                  manifests: tuple[Path, Path], work: Path, log: Callable[[str], None]) -> tuple[dict[str, Any], str]:
    """One `ugn train` run in work/name; falls back to random weights when no pretrained ones can be had."""
    import pandas as pd

    from unifiedgender.runtime import init_runtime
    from unifiedgender.training.config import TrainConfig
    from unifiedgender.training.progress import Reporter
    from unifiedgender.training.trainer import run_training

    config = TrainConfig(tag=f"{s.train_backbone}_F0_Af_Lb_Z0", arch="classifier", train=str(manifests[0]),
                         val=str(manifests[1]), out=str(work / name), epochs=s.epochs, batch_size=s.train_batch,
                         image_size=s.image_size, workers=max(s.workers * 2, 1), lr=3e-4, pretrained=pretrained,
                         cache="memory", early_stop_patience=0, device=s.device, precision=precision,
                         compile=compiled).validate()
    rt = init_runtime(device=s.device, precision=precision, compile=compiled)
    started = time.perf_counter()
    try:
        run_training(config, rt, overwrite=True, reporter=Reporter(stream=sys.stdout, tty=False))
    except UserError as exc:
        if pretrained == "none" or "no pretrained weights" not in str(exc):
            raise
        log(f"{exc}: training from random weights instead")
        pretrained = config.pretrained = "none"
        run_training(config, rt, overwrite=True, reporter=Reporter(stream=sys.stdout, tty=False))
    history = pd.read_csv(Path(config.out) / "history.csv")
    return {"status": "ok", "seconds": round(time.perf_counter() - started, 1), "pretrained": pretrained,
            "train_images_per_s": [round(v, 1) for v in history["images_per_s"]],
            "best_val_balanced_acc": float(history["val_balanced_acc"].max())}, pretrained


def _evaluate(run: Path, test: Path, device: str) -> dict[str, Any]:
    """`ugn evaluate` (its own process, as a user runs it) with the threshold chosen on the run's validation."""
    report = run / "report"
    cmd = [sys.executable, "-m", "unifiedgender", "evaluate", str(run / "best.pt"), "--data", str(test),
           "--threshold-from", str(run / "val_predictions.csv"), "--device", device, "--output", str(report),
           "--no-registry", "--no-plots", "--bootstrap", "200"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ugn evaluate failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-500:]}")
    image = json.loads((report / "report.json").read_text())["image_level"]
    return {"n": image["n"], **{k: image["metrics"].get(k) for k in ("accuracy", "balanced_accuracy", "roc_auc")},
            "ci": image["ci"].get("balanced_accuracy"), "majority_baseline": image["baseline"]}


def precision_agreement(checkpoint: Path, manifest: Path, device: str) -> dict[str, Any]:
    """prob_male of one trained model on the validation images under bf16 autocast and in fp32."""
    import numpy as np
    import torch

    from unifiedgender.checkpoint import load_checkpoint
    from unifiedgender.data.cache import Geometry, build_cache
    from unifiedgender.data.manifest import MODALITIES, read_manifest
    from unifiedgender.runtime import Runtime, resolve_device
    from unifiedgender.training.augment import Normalize

    dev = resolve_device(device)
    model, info = load_checkpoint(checkpoint, map_location=dev)
    config = info["data_config"]
    frame = read_manifest(manifest)
    decoded = build_cache(list(frame["path"]), Geometry.from_data_config(config), mode="memory")
    modalities = torch.tensor(frame["modality"].map(MODALITIES.index).to_numpy(), device=dev)
    normalize = Normalize(config["mean"], config["std"], int(config["input_size"][0]), dev, torch.channels_last)
    model = model.to(memory_format=torch.channels_last)
    probs = {}
    for precision in ("bf16", "fp32"):
        chunks = []
        for start in range(0, len(decoded.images), 256):
            images = normalize(torch.from_numpy(np.ascontiguousarray(decoded.images[start:start + 256])).to(dev))
            modality = modalities[start:start + 256]
            with torch.inference_mode(), Runtime(dev, precision).autocast():
                chunks.append(torch.sigmoid(model(images, modality)["logit"].float()).cpu())
        probs[precision] = torch.cat(chunks).numpy()
    diff = np.abs(probs["bf16"] - probs["fp32"])
    return {"images": len(diff), "max_abs_prob_diff": float(diff.max()), "mean_abs_prob_diff": float(diff.mean()),
            "label_agreement": float(np.mean((probs["bf16"] >= 0.5) == (probs["fp32"] >= 0.5)))}
