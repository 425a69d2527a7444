"""Wire a run together: manifests -> decoded caches -> model, loss, optimiser -> epochs -> run folder.

Run folder (rank 0 writes, nothing else does): config.yaml, train.log, history.csv, training_curves.png,
best.pt (best epoch by --select-metric, validation balanced accuracy by default), last.pt (full training state, rewritten atomically every
epoch and every --save-every-steps steps), val_predictions.csv (the best model's calibrated validation predictions),
skipped_images.csv (unreadable images, when any). After each validation a temperature and the thresholds of
every policy are fitted on the validation logits (unifiedgender.evaluation.calibration.fit_decision); best.pt
and the epoch-end last.pt store the decision of their epoch.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unifiedgender.data.cache import DecodedImages, Geometry, build_cache
from unifiedgender.data.dataset import CachedBatches, make_loader
from unifiedgender.data.manifest import DEMOGRAPHIC_COLUMNS, MODALITIES, gender_to_label, read_manifest
from unifiedgender.decision import Decision, calibrated_probs
from unifiedgender.errors import Preempted, UserError
from unifiedgender.evaluation.calibration import fit_decision
from unifiedgender.evaluation.metrics import binary_metrics
from unifiedgender.fileio import atomic_path, atomic_write
from unifiedgender.runtime import Runtime
from unifiedgender.training import callbacks as cb
from unifiedgender.training.augment import DeviceAugment, Normalize
from unifiedgender.training.config import TrainConfig, model_options
from unifiedgender.training.loggers import create_logger
from unifiedgender.training.loop import EpochProgress, evaluate, train_one_epoch
from unifiedgender.training.losses import build_criterion
from unifiedgender.training.preemption import StopSignals
from unifiedgender.training.progress import Reporter

LAST, BEST = "last.pt", "best.pt"
STOP_CHECK_STEPS = 10  # under DDP, how often the ranks compare stop signals (a signal waits at most this long)
# what `ugn train` writes when training starts, before any result: a folder holding only these never trained
START_FILES = frozenset({"config.yaml", "train.log", "skipped_images.csv"})
TRAIN_STATE_FORMAT = "ugn-train-state/1"
# history.csv's validation columns: val_<short name> of unifiedgender.evaluation.metrics.binary_metrics at 0.5
# (the short names are --select-metric's vocabulary, kept for earlier runs, recipes and config files)
HISTORY_METRICS = {"acc": "accuracy", "balanced_acc": "balanced_accuracy", "auc": "roc_auc"}
LOADER_WORKERS = 2  # processes gathering batches from the decoded cache (at most)


def create_sized_model(arch: str, backbone: str | None, *, pretrained: str, flag: bool = False,
                       image_size: int | None = None, **kwargs: Any) -> torch.nn.Module:
    """create_model with an optional square input size: architectures whose layers depend on it (simple_cnn)
    take it as an option, the others get it in their data config (which the checkpoint stores)."""
    from unifiedgender.models import create_model, get_arch

    sized = bool(image_size) and "image_size" in get_arch(arch).kwarg_names()
    if sized:
        kwargs["image_size"] = image_size
    model = create_model(arch, backbone, pretrained=pretrained, flag=flag, **kwargs)
    if image_size and not sized:
        channels = model.data_config["input_size"][0]
        model.data_config = {**model.data_config, "input_size": [channels, image_size, image_size]}
    return model


def check_run_dir(config: TrainConfig, overwrite: bool, runtime: Runtime) -> bool:
    """May a new run go to config.out? True when it holds an earlier start that never trained (only the files
    written at the start: config.yaml, train.log, skipped_images.csv): that folder is replaced. A folder with
    last.pt or any other file is refused unless --overwrite. Nothing is written here: `commit_run_dir` makes the
    folder when training starts.

    Rank 0 decides and tells the others, so a refusal stops every rank instead of leaving them waiting.
    """
    out = Path(config.out)
    problem, stale = None, False
    if runtime.is_main_process and out.exists() and not overwrite:
        if not out.is_dir():
            problem = f"{out} is a file; choose another --output folder"
        elif (out / LAST).exists():
            problem = (f"run folder {out} already holds a run (last.pt); continue it with --resume auto (or --resume "
                       f"{out}), replace it with --overwrite, or choose another --output")
        else:
            others = sorted(p.name for p in out.iterdir() if p.name not in START_FILES and not _partial_write(p.name))
            if others:
                problem = (f"run folder {out} already exists (it holds {others[0]}); pass --overwrite to replace it, "
                           "or choose another --output")
            stale = any(out.iterdir())
    problem, stale = runtime.broadcast_object((problem, stale))
    if problem:
        raise UserError(problem)
    return stale


def commit_run_dir(out: Path, runtime: Runtime) -> None:
    """Rank 0 creates the run folder empty (replacing an earlier one that check_run_dir allowed)."""
    problem = None
    if runtime.is_main_process:
        try:
            if out.exists():
                shutil.rmtree(out)
            out.mkdir(parents=True)
        except OSError as exc:
            problem = f"cannot create the run folder {out} ({exc}); choose another --output"
    problem = runtime.broadcast_object(problem)
    if problem:
        raise UserError(problem)


def _partial_write(name: str) -> bool:
    """A temporary file of an atomic write that a killed process left behind (.NAME.xxxx.part)."""
    return name.startswith(".") and name.endswith(".part")


class Trainer:
    """One training run; `fit()` returns the final metrics summary."""

    def __init__(self, config: TrainConfig, runtime: Runtime, reporter: Reporter | None = None,
                 resume_state: dict[str, Any] | None = None, stop_signals: StopSignals | None = None) -> None:
        from unifiedgender.tags import RunTag

        self.config, self.runtime = config, runtime
        self.out_dir = Path(config.out)
        self.reporter = reporter or Reporter(enabled=runtime.is_main_process)
        self.stop_signals = stop_signals
        self.skipped: list[tuple[str, str]] = []
        self.tag = RunTag.parse(config.tag)
        self.should_stop = False
        self.resume_state = resume_state
        self.decision: Decision | None = None  # fitted on the latest validation
        self.best_decision: Decision | None = None  # the one stored in best.pt (this session)
        self.log(f"run {self.tag} arch={config.arch} -> {self.out_dir} ({runtime.describe()})")
        seed_everything(config.seed, runtime.rank)
        self._build_model()
        self._build_data()
        self._build_optimisation()
        self._build_callbacks()

    # ----------------------------------------------------------------- setup
    def log(self, message: str) -> None:
        self.reporter.log(message)

    def _build_model(self) -> None:
        from unifiedgender.models import apply_freezing

        cfg = self.config
        kwargs = model_options(cfg.tag)
        model = create_sized_model(cfg.arch, self.tag.backbone, pretrained=cfg.weights or cfg.pretrained,
                                   flag=self.tag.flag_on, image_size=cfg.image_size, **kwargs)
        if cfg.weights:
            from unifiedgender.checkpoint import load_whole_model_if_matching

            whole = load_whole_model_if_matching(model, cfg.weights)
            self.log(f"weights {cfg.weights}: " + ("the whole model (backbone and heads, same architecture)" if whole
                     else "the backbone only; the heads start from random initialisation"))
        if cfg.preprocess:  # recorded in the data config, so the checkpoint's users apply it too
            model.data_config = {**model.data_config, "preprocess": cfg.preprocess}
        if cfg.face_crop:
            from unifiedgender.crop.face import FACE_PADDING

            model.data_config = {**model.data_config, "face_crop": FACE_PADDING}
        data_config = model.data_config
        apply_freezing(model, self.tag.freeze)
        self.data_config = data_config
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        self.log(f"model {cfg.arch}/{self.tag.backbone}: {trainable:,} of {total:,} parameters trainable ({self.tag.freeze})")
        self.age_weight = _pick(cfg.age_weight, model, "age_loss_weight", 1.0)
        self.find_unused = may_leave_parameters_unused(model, self.age_weight)
        self.model = self.runtime.prepare_model(model, self.find_unused)

    def _decode(self, name: str, paths: list[str]) -> DecodedImages:
        """Decode once into the cache; under DDP into one disk cache that every rank decodes a share of."""
        cfg, rt = self.config, self.runtime
        mode = cfg.cache
        if rt.distributed and mode == "memory":
            self.log(f"--cache memory would decode and hold one copy per process ({rt.world_size}); "
                     "using the disk cache instead (one memory-mapped copy per node)")
        if rt.distributed:
            mode = "disk"
        geometry = Geometry.from_data_config(self.data_config)
        decoded = build_cache(paths, geometry, mode=mode, cache_dir=cfg.cache_dir, workers=max(cfg.workers, 1),
                              coordinator=rt)
        framed = "" if geometry.face_crop is None else ", framed on their faces"
        self.log(f"{name}: {len(paths)} images decoded at {geometry.height}x{geometry.width}{framed}"
                 + (f" (cached in {decoded.path})" if decoded.path else " (in memory)"))
        return decoded

    def _build_data(self) -> None:
        cfg, rt = self.config, self.runtime
        self.train_df = read_manifest(cfg.train)
        self.val_df = read_manifest(cfg.val)
        for path, df in ((cfg.train, self.train_df), (cfg.val, self.val_df)):
            genders = sorted(set(df["gender"]))
            if len(genders) < 2:  # balanced accuracy and AUC are undefined: no best checkpoint could be chosen
                raise UserError(f"{path}: every image is '{genders[0]}'; training and validation need both genders "
                                "(re-split with `ugn data split`, which stratifies by gender, or add subjects)")
        module = rt.unwrap(self.model)
        if getattr(module, "hand_face_only", False):
            for path, df in ((cfg.train, self.train_df), (cfg.val, self.val_df)):
                other = sorted(set(df["modality"]) - {"hand", "face"})
                if other:
                    raise UserError(f"{path}: modality '{other[0]}' but {cfg.arch} ({self.tag.flag}) takes hand or face "
                                    "images only; filter the manifest or use another architecture/F0")
        self.train_cache = self._decode("train", list(self.train_df["path"]))
        self.val_cache = self._decode("val", list(self.val_df["path"]))
        self._report_skipped()
        train_ok = np.flatnonzero(self.train_cache.ok)
        self.val_ok = np.flatnonzero(self.val_cache.ok)
        if len(train_ok) == 0 or len(self.val_ok) == 0:
            raise UserError(f"no readable images in {cfg.train if len(train_ok) == 0 else cfg.val}; see skipped_images.csv")
        self.train_labels = gender_to_label(self.train_df["gender"]).to_numpy()
        self.val_labels = gender_to_label(self.val_df["gender"]).to_numpy()
        train_set = CachedBatches(self.train_cache.images, self.train_labels, _modality_index(self.train_df),
                                  _ages(self.train_df), train_ok)
        val_set = CachedBatches(self.val_cache.images, self.val_labels, _modality_index(self.val_df),
                                _ages(self.val_df), self.val_ok)
        # Gathering cached rows is cheap: two loader processes keep a GPU fed. On the CPU the model needs every
        # core, so batches are gathered in the main process. --workers sets the decoding threads.
        loader_workers = 0 if rt.device.type == "cpu" else min(cfg.workers, LOADER_WORKERS)
        common = dict(seed=cfg.seed, rank=rt.rank, world_size=rt.world_size, workers=loader_workers,
                      pin_memory=rt.pin_memory)
        self.train_loader, self.train_sampler = make_loader(train_set, cfg.batch_size, shuffle=True, drop_last=True, **common)
        self.val_loader, _ = make_loader(val_set, cfg.batch_size, shuffle=False, **common)
        mean, std = self.data_config["mean"], self.data_config["std"]
        self.normalize = Normalize(mean, std, self.data_config["input_size"][0], rt.device, rt.memory_format)
        self.augment = DeviceAugment(self.tag.augment_preset, self.normalize, seed=cfg.seed * 1000 + rt.rank)
        self.criterion = build_criterion(
            self.tag.loss_kind, self.train_labels[train_ok], gamma=cfg.focal_gamma, alpha=cfg.focal_alpha,
            pos_weight=cfg.pos_weight, modality_lambda=_pick(cfg.modality_lambda, module, "modality_loss_weight", 0.3),
            age_weight=self.age_weight)

    def _report_skipped(self) -> None:
        rows = [(df.at[i, "path"], reason) for df, cache in ((self.train_df, self.train_cache), (self.val_df, self.val_cache))
                for i, reason in cache.failures.items()]
        if not rows:
            return
        self.log(f"skipped {len(rows)} unreadable image(s); reasons in skipped_images.csv (first: {rows[0][0]}: {rows[0][1]})")
        self.skipped = rows

    def start_run_files(self) -> None:
        """The first files of the (now existing) run folder: train.log so far, config.yaml, skipped_images.csv."""
        if not self.runtime.is_main_process:
            return
        self.reporter.attach_log(self.out_dir / "train.log")
        self.config.write(self.out_dir / "config.yaml")
        if self.skipped:
            import pandas as pd

            with atomic_write(self.out_dir / "skipped_images.csv", newline="") as handle:
                pd.DataFrame(self.skipped, columns=["path", "status"]).to_csv(handle, index=False)

    def _build_optimisation(self) -> None:
        cfg = self.config
        params = list(self.runtime.unwrap(self.model).parameters())  # frozen ones get no grad and are skipped
        if cfg.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        elif cfg.optimizer == "adam":
            self.optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            self.optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        self.scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=cfg.epochs)
                          if cfg.scheduler == "cosine" else None)
        self.scaler = self.runtime.grad_scaler()

    def _build_callbacks(self) -> None:
        cfg = self.config
        self.history = cb.History(self.out_dir / "history.csv")
        self.callbacks: list[cb.Callback] = [self.history, cb.CurvePlot(self.history, self.out_dir / "training_curves.png"),
                                             cb.BestCheckpoint(cfg.select_metric, _mode(cfg.select_metric))]
        if cfg.scheduler == "plateau":
            self.callbacks.append(cb.ReduceLROnPlateau(self.optimizer, "val_loss", "min", cfg.plateau_factor, cfg.plateau_patience))
        if cfg.early_stop_patience > 0:
            self.callbacks.append(cb.EarlyStopping(cfg.early_stop_metric, _mode(cfg.early_stop_metric), cfg.early_stop_patience))
        tracker = create_logger(cfg.logger, self.out_dir)
        if tracker is not None:
            self.callbacks.append(tracker)

    # ----------------------------------------------------------------- checkpoints
    def _checkpoint(self, metrics: dict[str, float], resume: dict[str, Any] | None = None,
                    decision: Decision | None = None) -> dict[str, Any]:
        from unifiedgender.checkpoint import checkpoint_payload

        return checkpoint_payload(self.model, tag=self.tag, config=self.config.to_dict(), metrics=metrics, resume=resume,
                                  decision=decision)

    def _emit_saved(self, path: Path, kind: str) -> None:
        for callback in self.callbacks:
            callback.on_model_saved(self, path, kind)

    def save_best(self, epoch: int, metrics: dict[str, float]) -> None:
        """best.pt and the matching val_predictions.csv (rank 0)."""
        if self.runtime.is_main_process:
            self.best_decision = self.decision
            with atomic_path(self.out_dir / BEST) as tmp:
                torch.save(self._checkpoint({"epoch": epoch, **metrics}, decision=self.decision), tmp)
            self._write_val_predictions()
            self._emit_saved(self.out_dir / BEST, "best")

    def save_last(self, epoch: int, progress: EpochProgress | None, metrics: dict[str, float]) -> None:
        """last.pt with the full training state; `epoch` is the epoch to continue (with `progress` mid-epoch)."""
        rng = self.runtime.all_gather_object(_rng_state(self.augment))
        if not self.runtime.is_main_process:
            return
        payload = self._checkpoint(metrics, resume={
            "format": TRAIN_STATE_FORMAT, "epoch": epoch, "progress": progress.state_dict() if progress else None,
            "stopped": self.should_stop, "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None, "scaler": self.scaler.state_dict(),
            "callbacks": [c.state_dict() for c in self.callbacks], "rng": rng, "world_size": self.runtime.world_size,
        }, decision=None if progress else self.decision)  # mid-epoch weights have moved on from the last validation
        with atomic_path(self.out_dir / LAST) as tmp:
            torch.save(payload, tmp)
        self._emit_saved(self.out_dir / LAST, "last")

    def _restore(self, state: dict[str, Any]) -> tuple[int, EpochProgress | None]:
        from unifiedgender.models.weights import load_strict

        ts = state.get("resume") or {}
        if ts.get("format") != TRAIN_STATE_FORMAT:
            raise UserError(f"{self.out_dir / LAST}: not a ugn training state; cannot resume from it")
        if ts["world_size"] != self.runtime.world_size:
            raise UserError(f"{self.out_dir / LAST} was written by {ts['world_size']} process(es); resume with the same number")
        load_strict(self.runtime.unwrap(self.model), state["state_dict"], str(self.out_dir / LAST))
        self._set_trainable_for_epoch(ts["epoch"])
        self.optimizer.load_state_dict(ts["optimizer"])
        if self.scheduler and ts["scheduler"]:
            self.scheduler.load_state_dict(ts["scheduler"])
            self.scheduler.T_max = self.config.epochs  # --epochs given again on resume stretches the schedule
        self.scaler.load_state_dict(ts["scaler"])
        for callback, cstate in zip(self.callbacks, ts["callbacks"]):
            callback.load_state_dict(cstate)
        _set_rng_state(ts["rng"][self.runtime.rank], self.augment)
        self.should_stop = bool(ts["stopped"])
        progress = EpochProgress(**ts["progress"]) if ts["progress"] else None
        return int(ts["epoch"]), progress

    # ----------------------------------------------------------------- freezing schedule
    def _set_trainable_for_epoch(self, epoch: int) -> None:
        """--unfreeze-after N: from epoch N on, every parameter trains (DDP is rebuilt to include them)."""
        after = self.config.unfreeze_after
        if after is None or epoch < after:
            return
        module = self.runtime.unwrap(self.model)
        if all(p.requires_grad for p in module.parameters()):
            return
        for p in module.parameters():
            p.requires_grad_(True)
        self.model = self.runtime.wrap(module, self.find_unused)
        self.log(f"epoch {epoch + 1}: all layers unfrozen (--unfreeze-after {after})")

    # ----------------------------------------------------------------- the run
    def _write_val_predictions(self) -> None:
        import pandas as pd

        df = self.val_df
        probs = np.full(len(df), np.nan)
        probs[self._last_eval.indices] = calibrated_probs(self._last_eval.logits, self.decision.temperature)
        threshold = self.decision.threshold().value
        table = pd.DataFrame({"path": df["path"], "subject_id": df["subject_id"], "modality": df["modality"]})
        for column in DEMOGRAPHIC_COLUMNS:
            if column in df.columns:
                table[column] = df[column]
        table["gender"] = df["gender"]
        table["prob_male"] = probs
        table["pred"] = np.where(np.isnan(probs), "", np.where(probs >= threshold, "male", "female"))
        table["status"] = self.val_cache.status
        with atomic_write(self.out_dir / "val_predictions.csv", newline="") as handle:
            table.to_csv(handle, index=False)

    def fit(self) -> dict[str, float]:
        cfg, rt = self.config, self.runtime
        start_epoch, progress = 0, None
        if self.resume_state is not None:
            start_epoch, progress = self._restore(self.resume_state)
            self.resume_state = None
            where = f" step {progress.step}" if progress else ""
            self.log(f"resumed at epoch {start_epoch + 1}{where}")
        metrics: dict[str, float] = {}
        epoch = start_epoch
        while epoch < cfg.epochs and not self.should_stop:
            self._set_trainable_for_epoch(epoch)
            self.train_sampler.set_epoch(epoch)
            lr = self.optimizer.param_groups[0]["lr"]
            n_steps = len(self.train_loader)
            self.reporter.start_epoch(epoch, cfg.epochs, n_steps, progress.step if progress else 0)
            stats = train_one_epoch(self.model, self.train_loader, self.augment, self.criterion, self.optimizer,
                                    self.scaler, rt, progress=progress or EpochProgress(),
                                    on_step=lambda p, n, e=epoch: self._on_step(e, p, n), grad_clip=cfg.grad_clip)
            progress = None
            self._last_eval = evaluate(self.model, self.val_loader, self.normalize, self.criterion, rt, len(self.val_ok))
            labels = self.val_labels[self._last_eval.indices]
            val = binary_metrics(labels, self._last_eval.probs)
            self.decision = fit_decision(self._last_eval.logits, labels, policy=cfg.threshold_policy, chosen_on=(
                f"validation data {cfg.val} (epoch {epoch + 1}, {len(labels)} images)"))
            metrics = {**stats, "val_loss": self._last_eval.loss, **{f"val_{k}": val[name] for k, name in HISTORY_METRICS.items()},
                       "val_ece": self.decision.ece["uncalibrated"], "val_ece_calibrated": self.decision.ece["calibrated"],
                       "val_temperature": self.decision.temperature, "lr": lr}
            self.reporter.end_epoch(metrics)
            for callback in self.callbacks:
                callback.on_epoch_end(self, epoch, metrics)
            if self.scheduler is not None:
                self.scheduler.step()
            epoch += 1
            self.save_last(epoch, None, metrics)
            if epoch < cfg.epochs and not self.should_stop and self._stop_requested():
                self._stop(epoch, None)
        self.reporter.close()
        if rt.distributed:
            agree = rt.replicas_in_sync(self.model)
            self.log(f"replicas in sync across {rt.world_size} ranks: {'yes' if agree else 'NO'}")
            if not agree:
                raise RuntimeError("DDP replicas diverged: the ranks hold different weights")
        selector = next(c for c in self.callbacks if isinstance(c, cb.BestCheckpoint))
        best = selector.best if selector.mode == "max" else -selector.best
        summary = {**metrics, f"best_{selector.metric}": best, "epochs_trained": epoch}
        for callback in self.callbacks:
            callback.on_train_end(self, summary)
        if self.best_decision is not None:
            self.log(f"calibration of {BEST}: {self.best_decision.describe()}")
        self.log(f"done: best {selector.metric} {best:.4f}; run folder {self.out_dir}")
        return metrics

    def _on_step(self, epoch: int, progress: EpochProgress, n_steps: int) -> None:
        if self.reporter.logs_step(progress.step, n_steps):
            progress.settle()  # a logged loss is current; the progress bar shows the last settled mean
        secs = progress.seconds
        self.reporter.step(progress.step, n_steps, progress.loss_sum / max(progress.seen, 1),
                           progress.images * self.runtime.world_size / secs if secs > 0 else 0.0)
        every = self.config.save_every_steps
        if every and progress.step % every == 0 and progress.step < n_steps:
            self.save_last(epoch, progress, {})
        if self._stop_requested(progress.step, n_steps):
            self.save_last(epoch, progress, {})
            self._stop(epoch, progress)

    def _stop_requested(self, step: int | None = None, n_steps: int | None = None) -> bool:
        """Did any rank get SIGTERM/SIGUSR1? Alone: asked at every step. Under DDP the ranks compare their flags
        (one CPU all-reduce) every STOP_CHECK_STEPS steps, at an epoch's last step and at its end: every rank
        asks at the same steps, so they stop together, and the hot loop gets no collective on most steps."""
        if self.runtime.distributed and step is not None and step % STOP_CHECK_STEPS and step != n_steps:
            return False
        local = self.stop_signals is not None and self.stop_signals.received is not None
        return self.runtime.any_rank(local)

    def _stop(self, epoch: int, progress: EpochProgress | None) -> None:
        """After last.pt is saved: end the progress bar and raise Preempted (exit code 75: requeue me)."""
        self.reporter.close()
        name = self.stop_signals.received if self.stop_signals and self.stop_signals.received else "a stop signal"
        where = f"epoch {epoch + 1} step {progress.step}" if progress else f"the end of epoch {epoch}"
        message = (f"{name} received: training state saved at {where} in {self.out_dir / LAST}; continue with "
                   f"`ugn train --resume {self.out_dir}` (or the same command with --resume auto)")
        self.log(message)
        raise Preempted(message)


def _modality_index(df) -> np.ndarray:
    return df["modality"].map(MODALITIES.index).to_numpy()


def _ages(df) -> np.ndarray:
    import pandas as pd

    if "age" not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df["age"], errors="coerce").to_numpy(dtype=float)


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed python, numpy and torch with seed + rank: under DDP each rank draws its own dropout masks and
    augmentation ops (DDP copies rank 0's initial weights to all ranks); rank 0 and single runs use `seed`."""
    seed = seed + rank
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def may_leave_parameters_unused(model: torch.nn.Module, age_weight: float) -> bool:
    """Whether a training step can leave parameters without a gradient, which DDP must be told: MAG with hard
    gating (a batch routed to one head leaves the other unused; with modality weight 0 the gate gets none
    either; soft gating uses everything) and a multitask model with age weight 0 (the age head)."""
    from unifiedgender.models.mag import MAG
    from unifiedgender.models.multitask import MultiTask

    if isinstance(model, MAG):
        return model.gating == "hard"
    if isinstance(model, MultiTask):
        return age_weight == 0
    return False


def _mode(metric: str) -> str:
    """Losses are minimised, everything else (accuracy, balanced accuracy, AUC) maximised."""
    return "min" if metric.endswith("loss") else "max"


def _rng_state(augment: DeviceAugment) -> dict[str, Any]:
    """Every random generator the run uses (python, numpy, torch, augmentation), as checkpointable data."""
    from unifiedgender.checkpoint import capture_rng_state

    return {**capture_rng_state(), "augment": augment.state_dict()}


def _set_rng_state(state: dict[str, Any], augment: DeviceAugment) -> None:
    from unifiedgender.checkpoint import restore_rng_state

    restore_rng_state(state)
    augment.load_state_dict(state["augment"])


def _pick(configured: float | None, module: Any, attribute: str, default: float) -> float:
    """The configured loss weight, else the model's own (e.g. MAG's modality_loss_weight), else `default`."""
    return float(configured) if configured is not None else float(getattr(module, attribute, default))


def load_resume_state(run_dir: Path) -> dict[str, Any]:
    """last.pt of a run folder, loaded safely (weights_only=True)."""
    path = Path(run_dir) / LAST
    if not path.is_file():
        raise UserError(f"nothing to resume: {path} not found; start the run without --resume")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise UserError(f"{path}: cannot read the training state ({exc}); start again with --overwrite") from exc


def run_training(config: TrainConfig, runtime: Runtime, *, overwrite: bool = False, resume: bool = False,
                 reporter: Reporter | None = None) -> dict[str, float]:
    """The core of `ugn train`: check the folder (or load last.pt), build the Trainer, create the run folder only
    now that everything could be built, fit. SIGTERM/SIGUSR1 save last.pt and raise Preempted."""
    out = Path(config.out)
    with StopSignals() as stop_signals:
        state, stale = None, False
        if resume:
            state = load_resume_state(out)
        else:
            stale = check_run_dir(config, overwrite, runtime)
        trainer = Trainer(config, runtime, reporter, resume_state=state, stop_signals=stop_signals)
        if not resume:
            if stale and not overwrite:
                trainer.log(f"replacing {out}: an earlier start there never trained (no last.pt)")
            commit_run_dir(out, runtime)
        trainer.start_run_files()
        return trainer.fit()

