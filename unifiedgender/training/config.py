"""The resolved run configuration, from one documented precedence; saved as config.yaml.

Precedence, lowest first: TrainConfig defaults < `--recipe` < `--config` file < command-line flags < the run
tag's own settings (`_seedN` -> seed, extras `gamma=`/`alpha=` -> focal_gamma/focal_alpha). The tag names the
run, so what it says holds; a flag that contradicts it is refused. Every field is declared once, below, with
its flag and help text: `ugn train`'s options are generated from these declarations.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from unifiedgender.decision import DEFAULT_THRESHOLD_POLICY, THRESHOLD_POLICIES
from unifiedgender.errors import UserError
from unifiedgender.fileio import atomic_write

OPTIMIZERS = {"adamw": "AdamW", "sgd": "SGD", "adam": "Adam"}  # --optimizer -> torch.optim class (training.optim)
SCHEDULERS = ("cosine", "plateau")
PATH_FIELDS = ("train", "val", "out", "weights", "cache_dir")
SELECT_METRICS = ("val_balanced_acc", "val_auc", "val_acc", "val_loss")
LOGGERS = ("csv", "tensorboard", "mlflow")
TAG_EXTRA_FIELDS = {"gamma": "focal_gamma", "alpha": "focal_alpha"}  # the tag's other extras are model options
DEFAULT_SEED = 42


def setting(default: Any, help: str = "", *flags: str) -> Any:
    """A TrainConfig field with its command-line spelling (none: config file only) and help text."""
    return field(default=default, metadata={"flags": flags, "help": help})


@dataclass
class TrainConfig:
    """Everything a run needs; every field can come from the YAML file, and those with flags from the command line."""

    tag: str = setting("", "Run tag <backbone>.<pretrain>_F#_A#_L#_Z#[_key=value][_seedN].", "--tag")
    arch: str = setting("", "Architecture, e.g. umcc, mag, classifier, simple_cnn (docs/models.md lists them all).",
                        "--arch")
    train: str = setting("", "Training manifest (CSV).", "--train")
    val: str = setting("", "Validation manifest (CSV).", "--val")
    out: str = setting("", "Run folder [default: runs/<tag>].", "--output", "-o")
    epochs: int = setting(10, "Epochs [default: 10].", "--epochs")
    batch_size: int = setting(32, "Images per batch and process [default: 32].", "--batch-size")
    lr: float = setting(1e-4, "Learning rate [default: 1e-4].", "--lr")
    weight_decay: float = setting(1e-2, "Weight decay [default: 0.01].", "--weight-decay")
    optimizer: str = setting("adamw", "adamw | sgd | adam [default: adamw].", "--optimizer")
    momentum: float = setting(0.9)
    scheduler: str = setting("cosine", "cosine | plateau [default: cosine].", "--scheduler")
    plateau_factor: float = setting(0.1)
    plateau_patience: int = setting(2)
    image_size: int | None = setting(None, "Square input size [default: the backbone's].", "--image-size")
    preprocess: str = setting(  # fingerprint steps, stored in the data config
        "", "Fingerprint steps before resizing, stored in the checkpoint: crop+clahe+gabor (any of them) | none.",
        "--preprocess")
    face_crop: bool = setting(  # recorded in the checkpoint's data config
        False, "Frame every image on its aligned face (offline detector); evaluate, predict and serve then do the same.",
        "--face-crop/--no-face-crop")
    workers: int = setting(4, "Decoding threads and loader workers [default: 4].", "--workers")
    seed: int = setting(DEFAULT_SEED, "Random seed [default: 42]; a tag ending in _seedN sets it (a different --seed "
                        "is refused).", "--seed")
    weights: str | None = setting(None, "Local pretrained backbone weights file.", "--weights")
    pretrained: str = setting("default", "default | none [default: default].", "--pretrained")
    unfreeze_after: int | None = setting(None, "Unfreeze every layer from epoch N on.", "--unfreeze-after")
    early_stop_patience: int = setting(5, "Epochs without improvement before stopping; 0 = off [default: 5].",
                                       "--early-stop-patience")
    early_stop_metric: str = setting("val_balanced_acc", "History column to watch [default: val_balanced_acc].",
                                     "--early-stop-metric")
    select_metric: str = setting(
        "val_balanced_acc", f"Which epoch becomes best.pt: {' | '.join(SELECT_METRICS)} [default: val_balanced_acc].",
        "--select-metric")
    threshold_policy: str = setting(
        DEFAULT_THRESHOLD_POLICY, f"Default decision threshold stored in the checkpoint: {' | '.join(THRESHOLD_POLICIES)} "
        f"on calibrated validation P(male) [default: {DEFAULT_THRESHOLD_POLICY}]; all are stored.", "--threshold-policy")
    grad_clip: float | None = setting(None)
    focal_gamma: float = setting(2.0)  # the tag extra gamma= sets it
    focal_alpha: float | None = setting(None)  # the tag extra alpha= sets it
    pos_weight: float | None = setting(None)
    modality_lambda: float | None = setting(None)  # None: the model's modality_loss_weight (MAG: 0.3)
    age_weight: float | None = setting(None)  # None: the model's age_loss_weight (multitask: 1.0)
    device: str = setting("auto", "", "--device")  # help: cli.options.DEVICE_HELP, shared by every command
    precision: str = setting("auto", "auto | bf16 | fp16 | fp32 [default: auto = bf16/fp16 on GPU, fp32 on CPU].",
                             "--precision")
    compile: bool = setting(False, "torch.compile the model.", "--compile/--no-compile")
    channels_last: bool | None = setting(None)
    cache: str = setting("auto", "Decoded-image cache: auto | memory | disk [default: auto].", "--cache")
    cache_dir: str | None = setting(
        None, "Folder for disk caches [default: $UGN_CACHE_DIR or ~/.cache/unifiedgender/decoded].", "--cache-dir")
    save_every_steps: int = setting(0, "Also write last.pt every N steps (mid-epoch resume).", "--save-every-steps")
    log_every_steps: int = setting(0, "Without a TTY, log a line every N steps.", "--log-every-steps")
    logger: str = setting("csv", "csv | tensorboard | mlflow: also record history, config and final metrics there "
                          "(extras unifiedgender[tensorboard] / [mlflow]) [default: csv = history.csv only].", "--logger")

    def validate(self) -> TrainConfig:
        """Raise UserError naming the first missing or invalid setting."""
        for name in ("tag", "arch", "train", "val"):
            if not getattr(self, name):
                raise UserError(f"missing --{name.replace('_', '-')} (or '{name}:' in the config file)")
        from unifiedgender.models.registry import get_arch  # the registry names the architectures (imports torch)

        get_arch(self.arch)
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


def _choice(name: str, value: str, allowed: Iterable[str]) -> None:
    if value not in allowed:
        raise UserError(f"unknown {name} '{value}'; use one of {', '.join(allowed)}")


@functools.cache
def field_types() -> dict[str, type]:
    """Each TrainConfig field's value type, without None (`int | None` -> int)."""
    hints = typing.get_type_hints(TrainConfig)
    return {name: next(t for t in typing.get_args(hint) or (hint,) if t is not type(None)) for name, hint in hints.items()}


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


def tag_settings(tag: str) -> dict[str, Any]:
    """The settings a run tag fixes: `_seedN` -> seed, extras gamma=/alpha= -> focal_gamma/focal_alpha."""
    from unifiedgender.tags import RunTag

    parsed = RunTag.parse(tag)
    values: dict[str, Any] = {} if parsed.seed is None else {"seed": parsed.seed}
    for key, name in TAG_EXTRA_FIELDS.items():
        text = parsed.extra(key)
        if text is not None:
            try:
                values[name] = float(text)
            except ValueError:
                raise UserError(f"run tag '{tag}': {key}={text} is not a number; write e.g. {key}=1.5") from None
    return values


def model_options(tag: str) -> dict[str, Any]:
    """The tag's extras that are not settings, as architecture options (numbers where they look like numbers)."""
    from unifiedgender.tags import RunTag

    return {key: _number(value) for key, value in RunTag.parse(tag).extras if key not in TAG_EXTRA_FIELDS}


def _number(text: str) -> Any:
    """'0.5' -> 0.5, '3' -> 3, anything else the text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def resolve_config(config_file: str | None, flags: dict[str, Any], recipe: str | None = None) -> TrainConfig:
    """Layer the settings (module docstring): defaults < recipe < config file < flags given (None = not given) <
    the tag's settings. A flag contradicting the tag is refused."""
    values: dict[str, Any] = {}
    if recipe:
        from unifiedgender.recipes import recipe_path

        values.update(read_config_file(recipe_path(recipe)))
    if config_file:
        values.update(read_config_file(config_file))
    given = {k: v for k, v in flags.items() if v is not None}
    values.update(given)
    if values.get("tag"):
        for name, value in tag_settings(str(values["tag"])).items():
            if name in given and _coerce(name, given[name]) != value:
                flag = next(f for f in fields(TrainConfig) if f.name == name).metadata["flags"][0]
                raise UserError(f"{flag} {given[name]} contradicts the run tag {values['tag']} ({name} {value}); "
                                f"drop {flag} or change the tag")
            values[name] = value
    for name in PATH_FIELDS:
        if values.get(name):
            values[name] = str(Path(values[name]).expanduser().resolve())
    try:
        config = TrainConfig(**{name: _coerce(name, value) for name, value in values.items()})
    except (TypeError, ValueError) as exc:
        raise UserError(f"invalid setting: {exc}; check the config file and flags") from exc
    if not config.out and config.tag:
        config.out = str(Path("runs", config.tag).resolve())
    return config.validate()


def _coerce(name: str, value: Any) -> Any:
    """YAML may give "1e-4" as a string: numbers become the field's type."""
    kind = field_types().get(name)
    if value is None or isinstance(value, bool) or kind not in (int, float):
        return value
    return kind(value)
