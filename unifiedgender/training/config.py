"""The resolved run configuration: defaults < YAML config file < command-line flags; saved as config.yaml."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from unifiedgender.decision import DEFAULT_THRESHOLD_POLICY, THRESHOLD_POLICIES
from unifiedgender.errors import UserError
from unifiedgender.fileio import atomic_write

ARCHS = ("umcc", "mag", "classifier", "simple_cnn", "resnet50_head", "multitask")
OPTIMIZERS = ("adamw", "sgd", "adam")
SCHEDULERS = ("cosine", "plateau")
PATH_FIELDS = ("train", "val", "out", "weights", "cache_dir")
SELECT_METRICS = ("val_balanced_acc", "val_auc", "val_acc", "val_loss")
LOGGERS = ("csv", "tensorboard", "mlflow")


@dataclass
class TrainConfig:
    """Everything a run needs; every field can come from the YAML file or a flag of the same name."""

    tag: str = ""
    arch: str = ""
    train: str = ""
    val: str = ""
    out: str = ""
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 1e-2
    optimizer: str = "adamw"
    momentum: float = 0.9
    scheduler: str = "cosine"
    plateau_factor: float = 0.1
    plateau_patience: int = 2
    image_size: int | None = None
    preprocess: str = ""  # fingerprint steps before the resize, e.g. "crop+clahe" (stored in the data config)
    face_crop: bool = False  # frame every image on its aligned face (recorded in the checkpoint's data config)
    workers: int = 4
    seed: int | None = None
    weights: str | None = None
    pretrained: str = "default"
    unfreeze_after: int | None = None
    early_stop_patience: int = 5
    early_stop_metric: str = "val_balanced_acc"
    select_metric: str = "val_balanced_acc"  # which epoch becomes best.pt
    threshold_policy: str = DEFAULT_THRESHOLD_POLICY  # which stored threshold predict/serve/export use by default
    grad_clip: float | None = None
    focal_gamma: float = 2.0
    focal_alpha: float | None = None
    pos_weight: float | None = None
    modality_lambda: float | None = None  # None: the model's modality_loss_weight (MAG: 0.3)
    age_weight: float | None = None  # None: the model's age_loss_weight (multitask: 1.0)
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    channels_last: bool | None = None
    cache: str = "auto"
    cache_dir: str | None = None
    save_every_steps: int = 0
    log_every_steps: int = 0
    logger: str = "csv"  # also record to tensorboard | mlflow (history.csv is always written)

    def validate(self) -> TrainConfig:
        """Raise UserError naming the first missing or invalid setting."""
        for name in ("tag", "arch", "train", "val"):
            if not getattr(self, name):
                raise UserError(f"missing --{name.replace('_', '-')} (or '{name}:' in the config file)")
        _choice("arch", self.arch, ARCHS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("scheduler", self.scheduler, SCHEDULERS)
        _choice("cache", self.cache, ("auto", "memory", "disk"))
        _choice("select_metric", self.select_metric, SELECT_METRICS)
        _choice("logger", self.logger, LOGGERS)
        _choice("threshold_policy", self.threshold_policy, THRESHOLD_POLICIES)
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        if self.lr <= 0:
            raise UserError(f"--lr must be positive (got {self.lr})")
        if self.workers < 0:
            raise UserError(f"--workers must be >= 0 (got {self.workers})")
        if self.preprocess:
            from unifiedgender.fingerprints.preprocess import canonical_preprocess

            self.preprocess = canonical_preprocess(self.preprocess)
        if self.image_size is not None and self.image_size < 8:
            raise UserError(f"--image-size must be at least 8 pixels (got {self.image_size})")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the fully resolved configuration as YAML, atomically."""
        import yaml

        with atomic_write(path) as handle:
            yaml.safe_dump(self.to_dict(), handle, sort_keys=False)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"unknown {name} '{value}'; use one of {', '.join(allowed)}")


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML mapping of TrainConfig fields (dashes or underscores); relative paths resolve against the file's folder."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}; pass an existing YAML file to --config")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the file") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of settings such as 'epochs: 10'")
    known = {f.name for f in fields(TrainConfig)}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise UserError(f"{path}: unknown setting '{key}'; known settings: {', '.join(sorted(known))}")
        if name in PATH_FIELDS and value is not None and not os.path.isabs(str(value)):
            value = str((path.parent / str(value)).resolve())
        out[name] = value
    return out


def resolve_config(config_file: str | None, flags: dict[str, Any], recipe: str | None = None) -> TrainConfig:
    """Defaults, then the recipe, then the config file, then the flags that were given (None = not given)."""
    values: dict[str, Any] = {}
    if recipe:
        from unifiedgender.recipes import recipe_path

        values.update(read_config_file(recipe_path(recipe)))
    if config_file:
        values.update(read_config_file(config_file))
    values.update({k: v for k, v in flags.items() if v is not None})
    for name in PATH_FIELDS:
        if values.get(name):
            values[name] = str(Path(values[name]).expanduser().resolve())
    types = {f.name: f.type for f in fields(TrainConfig)}
    try:
        config = TrainConfig(**values)
        for name, value in values.items():  # YAML may give "1e-4" as a string
            kind = str(types[name])
            if value is not None and kind.startswith("float"):
                setattr(config, name, float(value))
            elif value is not None and kind.startswith("int") and not isinstance(value, bool):
                setattr(config, name, int(value))
    except (TypeError, ValueError) as exc:
        raise UserError(f"invalid setting: {exc}; check the config file and flags") from exc
    if not config.out and config.tag:
        config.out = str(Path("runs", config.tag).resolve())
    return config.validate()
