"""`ugn train`: flags (or a YAML config) -> TrainConfig -> unifiedgender.training.trainer.run_training."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from unifiedgender.cli.options import DEVICE_HELP, device_option, old_output_option, pick_output
from unifiedgender.decision import DEFAULT_THRESHOLD_POLICY, THRESHOLD_POLICIES  # standard library only
from unifiedgender.recipes import recipe_names  # pathlib only: cheap enough for --help

ARCH_HELP = "umcc | mag | classifier | simple_cnn | resnet50_head | multitask"
RESUMABLE = {"epochs", "workers", "log_every_steps", "save_every_steps"}
RECIPES = recipe_names()


def train(
    tag: Optional[str] = typer.Option(None, "--tag", help="Run tag <backbone>.<pretrain>_F#_A#_L#_Z#[_key=value][_seedN]."),
    recipe: Optional[str] = typer.Option(
        None, "--recipe", help=f"Suggested settings for a modality ({' | '.join(RECIPES)}); --config and flags override them."
    ),
    arch: Optional[str] = typer.Option(None, "--arch", help=ARCH_HELP),
    train_csv: Optional[Path] = typer.Option(None, "--train", help="Training manifest (CSV)."),
    val_csv: Optional[Path] = typer.Option(None, "--val", help="Validation manifest (CSV)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs [default: 10]."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Images per batch and process [default: 32]."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate [default: 1e-4]."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="Weight decay [default: 0.01]."),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", help="adamw | sgd | adam [default: adamw]."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="cosine | plateau [default: cosine]."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Square input size [default: the backbone's]."),
    preprocess: Optional[str] = typer.Option(
        None, "--preprocess", help="Fingerprint steps before resizing, stored in the checkpoint: crop+clahe+gabor (any of them) | none."),
    face_crop: Optional[bool] = typer.Option(
        None, "--face-crop/--no-face-crop", help="Frame every image on its aligned face (offline detector); evaluate, predict and serve then do the same."
    ),
    workers: Optional[int] = typer.Option(None, "--workers", help="Decoding threads and loader workers [default: 4]."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed [default: the tag's _seedN, else 42]."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Run folder [default: runs/<tag>]."),
    out_old: Optional[Path] = old_output_option("--out"),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file of settings; flags override it."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Local pretrained backbone weights file."),
    pretrained: Optional[str] = typer.Option(None, "--pretrained", help="default | none [default: default]."),
    unfreeze_after: Optional[int] = typer.Option(None, "--unfreeze-after", help="Unfreeze every layer from epoch N on."),
    early_stop_patience: Optional[int] = typer.Option(None, "--early-stop-patience", help="Epochs without improvement before stopping; 0 = off [default: 5]."),
    early_stop_metric: Optional[str] = typer.Option(None, "--early-stop-metric", help="History column to watch [default: val_balanced_acc]."),
    select_metric: Optional[str] = typer.Option(
        None, "--select-metric", help="Which epoch becomes best.pt: val_balanced_acc | val_auc | val_acc | val_loss [default: val_balanced_acc]."
    ),
    threshold_policy: Optional[str] = typer.Option(
        None, "--threshold-policy",
        help=f"Default decision threshold stored in the checkpoint: {' | '.join(THRESHOLD_POLICIES)} on calibrated validation "
        f"P(male) [default: {DEFAULT_THRESHOLD_POLICY}]; all are stored.",
    ),
    compile: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model."),
    precision: Optional[str] = typer.Option(None, "--precision", help="auto | bf16 | fp16 | fp32 [default: auto = bf16/fp16 on GPU, fp32 on CPU]."),
    device: Optional[str] = device_option(None, DEVICE_HELP[:-1] + " [default: auto]."),
    cache: Optional[str] = typer.Option(None, "--cache", help="Decoded-image cache: auto | memory | disk [default: auto]."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Folder for disk caches [default: $UGN_CACHE_DIR or ~/.cache/unifiedgender/decoded]."),
    save_every_steps: Optional[int] = typer.Option(None, "--save-every-steps", help="Also write last.pt every N steps (mid-epoch resume)."),
    log_every_steps: Optional[int] = typer.Option(None, "--log-every-steps", help="Without a TTY, log a line every N steps."),
    logger: Optional[str] = typer.Option(
        None, "--logger", help="csv | tensorboard | mlflow: also record history, config and final metrics there "
        "(extras unifiedgender[tensorboard] / [mlflow]) [default: csv = history.csv only]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run folder."),
    resume: Optional[str] = typer.Option(
        None, "--resume", metavar="auto|FOLDER",
        help="FOLDER: continue that run from its last.pt. auto: continue the --output run when it has a last.pt, "
             "else start it (what a requeued Slurm job should run)."),
) -> None:
    """Train a model from a run tag on train/val manifests."""
    from unifiedgender.errors import UserError
    from unifiedgender.runtime import runtime_session
    from unifiedgender.training.config import resolve_config
    from unifiedgender.training.progress import Reporter
    from unifiedgender.training.trainer import run_training

    out = pick_output(output, out_old, "--out")
    flags = {
        "tag": tag, "arch": arch, "train": train_csv and str(train_csv), "val": val_csv and str(val_csv),
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "optimizer": optimizer,
        "scheduler": scheduler, "image_size": image_size, "preprocess": preprocess, "face_crop": face_crop, "workers": workers, "seed": seed, "out": out and str(out),
        "weights": weights and str(weights), "pretrained": pretrained, "unfreeze_after": unfreeze_after,
        "early_stop_patience": early_stop_patience, "early_stop_metric": early_stop_metric,
        "select_metric": select_metric, "threshold_policy": threshold_policy, "compile": compile,
        "precision": precision, "device": device, "cache": cache, "cache_dir": cache_dir and str(cache_dir),
        "save_every_steps": save_every_steps, "log_every_steps": log_every_steps, "logger": logger,
    }
    if resume == "auto":
        if overwrite:
            raise UserError("--resume auto continues a run or starts it; drop --overwrite (or drop --resume auto)")
        cfg = resolve_config(str(config) if config else None, flags, recipe=recipe)
        resuming = Path(cfg.out, "last.pt").is_file()
        if resuming:
            cfg = _saved_config(Path(cfg.out), flags, fresh=cfg)
    elif resume is not None:
        given = sorted(k for k, v in flags.items() if v is not None and k not in RESUMABLE)
        if given or config is not None or recipe is not None or overwrite:
            raise UserError(f"--resume continues {resume} with its saved config.yaml; drop --{(given or ['config'])[0].replace('_', '-')}")
        cfg, resuming = _saved_config(Path(resume), flags), True
    else:
        cfg, resuming = resolve_config(str(config) if config else None, flags, recipe=recipe), False
    if not resuming and recipe is None:
        _suggest_recipe(cfg.train)
    with runtime_session(device=cfg.device, precision=cfg.precision, channels_last=cfg.channels_last, compile=cfg.compile) as rt:
        reporter = Reporter(enabled=rt.is_main_process, log_every_steps=cfg.log_every_steps)
        run_training(cfg, rt, overwrite=overwrite, resume=resuming, reporter=reporter)


def _saved_config(run_dir: Path, flags: dict, fresh=None):
    """The run folder's config.yaml with the resumable flags applied. With `fresh` (--resume auto), the settings
    this command gives must match the saved ones: a requeued job must not continue a different run."""
    from unifiedgender.errors import UserError
    from unifiedgender.training.config import resolve_config

    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise UserError(f"nothing to resume: {saved} not found; start the run without --resume")
    cfg = resolve_config(str(saved), {**{k: v for k, v in flags.items() if k in RESUMABLE}, "out": str(run_dir)})
    if fresh is not None:
        for key in ["tag", "arch", "train", "val", *(k for k, v in flags.items() if v is not None)]:
            if key in RESUMABLE or key == "out":
                continue
            if getattr(cfg, key) != getattr(fresh, key):
                raise UserError(f"{run_dir} holds a run with {key}={getattr(cfg, key)}, but this command gives "
                                f"{getattr(fresh, key)}; give the same settings to continue it, or choose another --output")
    return cfg


def _suggest_recipe(train_manifest: str) -> None:
    """Name the bundled recipe for the training data's modality (a tip on stderr; nothing changes)."""
    import csv

    from unifiedgender.recipes import suggested_recipe

    try:
        with open(train_manifest, newline="", encoding="utf-8") as handle:
            modalities = {row.get("modality") or "" for row in csv.DictReader(handle)}
    except (OSError, UnicodeDecodeError, csv.Error):
        return  # the trainer reports unreadable manifests with the fix
    name = suggested_recipe(modalities)
    if name:
        typer.echo(f"tip: `--recipe {name}` holds the settings validation chose for this data (docs/training.md)", err=True)
