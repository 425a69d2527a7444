"""`ugn bench all`: the one prepared GPU check (issue #18), written to one JSON file and a Markdown twin.

Phases (measured in unifiedgender.gpu_phases), each timed with its peak GPU memory; a failing phase is recorded
and the others still run:
  environment  device, memory, driver, torch/CUDA/cuDNN versions, native bf16
  train_bench  `ugn bench train` (a) synthetic, (b) project data path, (c) PIL DataLoader, for each backbone
  syncs        GPU->CPU synchronisations in the training hot loop (CUDA's sync debug mode)
  predict      `ugn bench predict` on the device against the model's synthetic ceiling
  training     a short real training (LFW faces) per precision and compile mode, `ugn evaluate` on the
               test split, and bf16-vs-fp32 agreement of the trained model's predictions
On a GPU the settings are the issue's (224 px, batch 256, bf16, channels_last, 4 workers; about 6 minutes
on one recent GPU). With `dry_run` (forced on a machine without CUDA) the same phases run on the CPU with
tiny settings in well under a minute, after printing what the GPU run would do; their figures say nothing
about speed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from unifiedgender.errors import UserError
from unifiedgender.fileio import atomic_write
from unifiedgender.gpu_phases import (
    DRY_SETTINGS,
    GPU_SETTINGS,
    CheckSettings,
    count_syncs,
    environment,
    predict_bench,
    real_training,
    train_bench,
)

FORMAT = "ugn-gpu-check/1"
TARGETS = {"b/a": 0.9, "b/c": 3.0, "predict/ceiling": 0.7}
SANE_BALANCED_ACC = 0.75  # LFW sex classification, ImageNet-pretrained EfficientNet-Lite0, 3 epochs at 224 px
BF16_MAX_PROB_DIFF = 0.05


@dataclass
class Phase:
    name: str
    status: str = "ok"  # ok | failed | skipped
    seconds: float = 0.0
    peak_gpu_mb: float | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass
class GpuCheckReport:
    format: str
    created: str
    dry_run: bool
    command: str
    settings: dict[str, Any]
    phases: list[Phase]
    targets: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan(settings: CheckSettings, data: Path | None) -> list[str]:
    """What the check runs, as the equivalent `ugn` commands (printed before a run and by --dry-run)."""
    s = settings
    lines = ["environment: torch/CUDA/cuDNN versions, device name and memory, driver (nvidia-smi), native bf16"]
    for backbone in s.backbones:
        lines.append(f"ugn bench train --backbone {backbone} --batch-size {s.batch_size} --image-size {s.image_size} "
                     f"--steps {s.steps} --workers {s.workers} --rounds {s.rounds} --source-size {s.source_size} "
                     f"--device {s.device} --precision {s.bench_precision}")
    lines.append(f"syncs: {s.sync_steps} training steps of classifier/resnet18 under torch.cuda.set_sync_debug_mode('warn')")
    lines.append(f"ugn bench predict --arch classifier --backbone {s.predict_backbone} -n {s.predict_images} "
                 f"-b {s.predict_batch} --rounds {s.rounds} --device {s.device}"
                 + (f" --folder {data / 'lfw-deepfunneled'}" if data else ""))
    source = (f"ugn data import lfw {data}" if data else
              "LFW when found (--data, $UGN_DATA/lfw_gender, shared/data, ../shared/data), else the package's sample faces")
    lines.append(f"data: {source}; ugn data subset --per-subject {s.per_subject}"
                 + (f" --max-subjects {s.max_subjects}" if s.max_subjects else "") + "; ugn data split --ratios 0.7,0.15,0.15")
    for precision, compiled in s.runs:
        lines.append(f"ugn train --tag {s.train_backbone}_F0_Af_Lb_Z0 --arch classifier --epochs {s.epochs} "
                     f"--batch-size {s.train_batch} --image-size {s.image_size} --precision {precision} "
                     f"--{'' if compiled else 'no-'}compile --device {s.device} --cache memory")
    lines.append(f"ugn evaluate RUN/best.pt --data test.csv --threshold-from RUN/val_predictions.csv "
                 f"(the first {s.evaluated_runs} run(s))")
    lines.append("agreement: the bf16 run's best.pt on the validation images under bf16 autocast vs fp32")
    return lines


def run_gpu_check(out: Path, *, data: Path | None = None, dry_run: bool = False, overwrite: bool = False,
                  device: str = "auto", command: str = "ugn bench all",
                  log: Callable[[str], None] = print) -> GpuCheckReport:
    """Run every phase and write `out` (JSON) and `out` with suffix .md; the work folder is OUT_work/."""
    import torch

    out = Path(out)
    work = out.with_name(out.stem + "_work")
    for path in (out, out.with_suffix(".md"), work):
        if path.exists() and not overwrite:
            raise UserError(f"{path} already exists; pass --overwrite or choose another --output")
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise UserError(f"--device {device}: the GPU check runs on cuda (or cpu for a dry run)")
    on_gpu = torch.cuda.is_available() and device != "cpu"
    if not on_gpu and not dry_run:
        log("no CUDA device here: running the dry run on the CPU (tiny settings; figures say nothing about speed)")
    dry_run = dry_run or not on_gpu
    settings = DRY_SETTINGS if dry_run else replace(GPU_SETTINGS, device=device if device != "auto" else "cuda")
    data = _lfw_folder(data, dry_run)
    log(("dry run on the CPU of" if dry_run else "GPU check:") + " the GPU check, which runs:")
    for line in plan(GPU_SETTINGS, data):
        log(f"  {line}")
    if work.exists():
        import shutil

        shutil.rmtree(work)
    work.mkdir(parents=True)
    phases = [
        _phase("environment", settings, log, lambda: environment(settings)),
        *[_phase(f"train_bench:{b}", settings, log, lambda b=b: train_bench(settings, b)) for b in settings.backbones],
        _phase("syncs", settings, log, lambda: count_syncs(settings)),
        _phase("predict", settings, log, lambda: predict_bench(settings, data)),
        _phase("training", settings, log, lambda: real_training(settings, data, work, log)),
    ]
    report = GpuCheckReport(FORMAT, datetime.now(timezone.utc).isoformat(timespec="seconds"), dry_run,
                            command, asdict(settings), phases,
                            targets(phases, dry_run))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as handle:
        json.dump(report.as_dict(), handle, indent=2, default=str)
    with atomic_write(out.with_suffix(".md")) as handle:
        handle.write(markdown(report))
    return report


def _lfw_folder(data: Path | None, dry_run: bool) -> Path | None:
    """The LFW folder (labels/ + lfw-deepfunneled/): --data, else (GPU run) $UGN_DATA/lfw_gender, shared/data or
    ../shared/data; None = the package's sample faces and synthetic JPEGs (the default of a dry run)."""
    import os

    if data is not None:
        data = Path(data)
        if not (data / "lfw-deepfunneled").is_dir():
            raise UserError(f"--data {data}: not an LFW folder (needs lfw-deepfunneled/ and labels/); see docs/data.md")
        return data.resolve()
    if dry_run:
        return None
    roots = [Path(os.environ["UGN_DATA"])] if os.environ.get("UGN_DATA") else []
    for root in [*roots, Path("shared", "data"), Path("..", "shared", "data")]:
        if (root / "lfw_gender" / "lfw-deepfunneled").is_dir():
            return (root / "lfw_gender").resolve()
    return None


def _phase(name: str, settings: CheckSettings, log: Callable[[str], None], work: Callable[[], dict[str, Any]]) -> Phase:
    """Run one phase: its result, seconds and peak GPU memory, or the error (the next phase still runs)."""
    import torch

    cuda = settings.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    phase = Phase(name)
    started = time.perf_counter()
    log(f"[{name}] ...")
    try:
        phase.result = work()
    except Exception as exc:  # noqa: BLE001 - a broken phase is a finding of the check, not the end of it
        phase.status, phase.error = "failed", f"{type(exc).__name__}: {exc}"
    phase.seconds = round(time.perf_counter() - started, 2)
    if cuda:
        phase.peak_gpu_mb = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    log(f"[{name}] {phase.status} in {phase.seconds:.1f}s" + (f": {phase.error}" if phase.error else ""))
    return phase


def targets(phases: list[Phase], dry_run: bool) -> list[dict[str, Any]]:
    """Each target of the issue with the measured value and met / not met (n/a in a dry run)."""
    rows: list[dict[str, Any]] = []

    def add(name: str, value: float | None, goal: float, higher: bool = True) -> None:
        met = None if value is None or dry_run else (value >= goal if higher else value <= goal)
        rows.append({"target": name, "goal": f"{'>=' if higher else '<='} {goal}", "value": value,
                     "met": "n/a (dry run)" if dry_run else ("no data" if met is None else ("yes" if met else "no"))})

    by_name = {p.name: p for p in phases}
    for phase in phases:
        if phase.name.startswith("train_bench:"):
            backbone = phase.name.split(":", 1)[1]
            add(f"{backbone}: (b) project >= 0.9 x (a) synthetic", phase.result.get("ratio_project_vs_synthetic"), TARGETS["b/a"])
            add(f"{backbone}: (b) project >= 3 x (c) PIL", phase.result.get("ratio_project_vs_pil"), TARGETS["b/c"])
    add("predict >= 0.7 x synthetic ceiling", by_name["predict"].result.get("of_ceiling", {}).get("torch"),
        TARGETS["predict/ceiling"])
    training = by_name["training"].result
    for name, run in training.get("runs", {}).items():
        if run.get("status") == "ok" and run["test"] is None:
            continue  # trained but not evaluated (the dry run evaluates one run)
        add(f"training {name}: test balanced accuracy (sane)", (run["test"] or {}).get("balanced_accuracy"),
            SANE_BALANCED_ACC)
    agreement = training.get("bf16_vs_fp32", {})
    add("bf16 vs fp32: max |prob difference|", agreement.get("max_abs_prob_diff"), BF16_MAX_PROB_DIFF, higher=False)
    return rows


def markdown(report: GpuCheckReport) -> str:
    """The report as Markdown: environment, phases, bench figures, training, targets."""
    env = next((p.result for p in report.phases if p.name == "environment"), {})
    lines = [f"# GPU check ({'DRY RUN on the CPU: no speed figures' if report.dry_run else env.get('device', '')})", "",
             f"- created: {report.created}", f"- command: `{report.command}`",
             f"- environment: {', '.join(f'{k} {v}' for k, v in env.items())}", "",
             "| phase | status | seconds | peak GPU MiB | note |", "|---|---|--:|--:|---|"]
    for p in report.phases:
        lines.append(f"| {p.name} | {p.status} | {p.seconds:.1f} | {'' if p.peak_gpu_mb is None else p.peak_gpu_mb} | "
                     f"{p.error.replace('|', '/')[:200]} |")
    lines += ["", "## Training throughput (images/s, best round)", "",
              "| backbone | (a) synthetic | (b) project | (c) PIL | b/a | b/c |", "|---|--:|--:|--:|--:|--:|"]
    for p in report.phases:
        if p.name.startswith("train_bench:") and p.status == "ok":
            rates = {r["name"]: r["images_per_s"] for r in p.result["results"]}
            lines.append(f"| {p.result['backbone']} | {rates['synthetic']:.1f} | {rates['project']:.1f} | {rates['pil']:.1f} | "
                         f"{p.result['ratio_project_vs_synthetic']:.2f} | {p.result['ratio_project_vs_pil']:.2f} |")
    training = next((p.result for p in report.phases if p.name == "training"), {})
    lines += ["", "## Training runs", "", "| run | status | seconds | train images/s per epoch | best val BA | test BA |",
              "|---|---|--:|---|--:|--:|"]
    for name, run in training.get("runs", {}).items():
        test = (run.get("test") or {}).get("balanced_accuracy")
        lines.append(f"| {name} | {run.get('status')} {run.get('error', '')[:120]} | {run.get('seconds', '')} | "
                     f"{run.get('train_images_per_s', '')} | {run.get('best_val_balanced_acc', '')} | "
                     f"{'' if test is None else f'{test:.3f}'} |")
    lines += ["", "## Targets", "", "| target | goal | value | met |", "|---|---|--:|---|"]
    for row in report.targets:
        value = "" if row["value"] is None else f"{row['value']:.3g}"
        lines.append(f"| {row['target']} | {row['goal']} | {value} | {row['met']} |")
    lines += ["", "Full figures (predict, syncs, training runs, evaluation): the JSON file beside this one.", ""]
    return "\n".join(lines)
