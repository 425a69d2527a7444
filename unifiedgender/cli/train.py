"""`ugn train`: flags (or a YAML config) -> TrainConfig -> unifiedgender.training.trainer.run_training.

The options that set TrainConfig fields are generated from the fields' declarations in
unifiedgender.training.config (name, flag, help), so the field list is written once.
"""

from __future__ import annotations

import inspect
from dataclasses import fields
from pathlib import Path
from typing import Any, Optional

import typer

from unifiedgender.cli.options import DEVICE_HELP, device_option, old_output_option, pick_output
from unifiedgender.recipes import recipe_names  # pathlib only: cheap enough for --help
from unifiedgender.training.config import PATH_FIELDS, TrainConfig, field_types  # standard library only

RESUMABLE = {"epochs", "workers", "log_every_steps", "save_every_steps"}
RECIPES = recipe_names()
COMMAND_OPTIONS = ("recipe", "config", "out_old", "overwrite", "resume")  # options that are not TrainConfig fields


def _config_options() -> list[inspect.Parameter]:
    """One keyword parameter per TrainConfig field with a flag: default None (not given), the field's type."""
    types = field_types()
    params = []
    for f in fields(TrainConfig):
        flags = f.metadata["flags"]
        if not flags:
            continue
        kind = Path if f.name in PATH_FIELDS else types[f.name]
        option = (device_option(None, DEVICE_HELP[:-1] + " [default: auto].") if f.name == "device"
                  else typer.Option(None, *flags, help=f.metadata["help"]))
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=Optional[kind]))
    return params


def _command_options() -> list[inspect.Parameter]:
    options: dict[str, tuple[Any, Any]] = {
        "recipe": (Optional[str], typer.Option(None, "--recipe", help=(
            f"Suggested settings for a modality ({' | '.join(RECIPES)}); --config and flags override them."))),
        "config": (Optional[Path], typer.Option(None, "--config", help="YAML file of settings; flags override it.")),
        "out_old": (Optional[Path], old_output_option("--out")),
        "overwrite": (bool, typer.Option(False, "--overwrite", help="Replace an existing run folder.")),
        "resume": (Optional[str], typer.Option(
            None, "--resume", metavar="auto|FOLDER",
            help="FOLDER: continue that run from its last.pt. auto: continue the --output run when it has a last.pt, "
                 "else start it (what a requeued Slurm job should run).")),
    }
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=options[name][1], annotation=options[name][0])
            for name in COMMAND_OPTIONS]


def train(**options: Any) -> None:
    """Train a model from a run tag on train/val manifests."""
    from unifiedgender.errors import UserError
    from unifiedgender.runtime import runtime_session
    from unifiedgender.training.config import resolve_config
    from unifiedgender.training.progress import Reporter
    from unifiedgender.training.trainer import run_training

    recipe, config, overwrite, resume = (options.pop(k) for k in ("recipe", "config", "overwrite", "resume"))
    options["out"] = pick_output(options["out"], options.pop("out_old"), "--out")
    flags = {k: str(v) if isinstance(v, Path) else v for k, v in options.items()}
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


train.__signature__ = inspect.Signature([*_config_options(), *_command_options()])  # typer reads it


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
