"""Wire a run together: manifests -> decoded caches -> model, loss, optimiser -> epochs -> run folder.

Run folder (rank 0 writes, nothing else does): config.yaml, train.log, history.csv, training_curves.png,
best.pt (best epoch by --select-metric, validation balanced accuracy by default), last.pt (full training state,
rewritten atomically every epoch and every --save-every-steps steps), val_predictions.csv (the best model's
calibrated validation predictions), skipped_images.csv (unreadable images, when any). After each validation a
temperature and the thresholds of every policy are fitted on the validation logits
(unifiedgender.evaluation.calibration.fit_decision); best.pt and the epoch-end last.pt store the decision of
their epoch. The parts live beside: training.data (manifests, cache, loaders), training.optim, training.state
(last.pt's TrainState), training.rundir (folder checks, train.log), training.loop (the plain loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unifiedgender.decision import Decision, calibrated_probs
from unifiedgender.errors import Preempted, UserError
from unifiedgender.evaluation.calibration import fit_decision
from unifiedgender.evaluation.metrics import binary_metrics
from unifiedgender.evaluation.predictions import predictions_table
from unifiedgender.fileio import atomic_path, atomic_write
from unifiedgender.runtime import Runtime
from unifiedgender.training import callbacks as cb
from unifiedgender.training.augment import DeviceAugment, Normalize
from unifiedgender.training.config import TrainConfig, model_options
from unifiedgender.training.data import decode_splits, read_split_manifests
from unifiedgender.training.loggers import create_logger
from unifiedgender.training.loop import EpochProgress, EvalResult, train_one_epoch, validate
from unifiedgender.training.losses import build_criterion
from unifiedgender.training.optim import build_optimizer, build_scheduler
from unifiedgender.training.preemption import StopSignals
from unifiedgender.training.progress import Reporter
from unifiedgender.training.rundir import BEST, LAST, RunLog, check_run_dir, commit_run_dir, load_resume_state, write_skipped
from unifiedgender.training.state import TrainState, rng_state, seed_everything

STOP_CHECK_STEPS = 10  # under DDP, how often the ranks compare stop signals (a signal waits at most this long)
# history.csv's validation columns: val_<short name> of unifiedgender.evaluation.metrics.binary_metrics at 0.5
# (the short names are --select-metric's vocabulary, kept for earlier runs, recipes and config files)
HISTORY_METRICS = {"acc": "accuracy", "balanced_acc": "balanced_accuracy", "auc": "roc_auc"}


@dataclass
class Validation:
    """One epoch's validation: the gathered outputs and the decision (temperature, thresholds) fitted on them."""

    result: EvalResult
    decision: Decision


class Trainer:
    """One training run; `fit()` returns the final metrics summary."""

    def __init__(self, config: TrainConfig, runtime: Runtime, reporter: Reporter | None = None,
                 resume_state: dict[str, Any] | None = None, stop_signals: StopSignals | None = None) -> None:
        from unifiedgender.tags import RunTag

        self.config, self.runtime = config, runtime
        self.out_dir = Path(config.out)
        self.reporter = reporter or Reporter(enabled=runtime.is_main_process)
        self.run_log = RunLog()  # train.log, once the run folder exists
        self.stop_signals = stop_signals
        self.tag = RunTag.parse(config.tag)
        self.should_stop = False
        self.resume_state = resume_state
        self.validation: Validation | None = None  # the latest epoch's
        self.best_decision: Decision | None = None  # the one stored in best.pt (this session)
        self.log(f"run {self.tag} arch={config.arch} -> {self.out_dir} ({runtime.describe()})")
        seed_everything(config.seed, runtime.rank)
        self._build_model()
        self._build_data()
        self._build_optimisation()
        self._build_callbacks()

    # ----------------------------------------------------------------- setup
    def log(self, message: str) -> None:
        self.run_log.write(self.reporter.log(message))

    def _build_model(self) -> None:
        from unifiedgender.models import apply_freezing, create_model

        cfg = self.config
        model = create_model(cfg.arch, self.tag.backbone, pretrained=cfg.weights or cfg.pretrained,
                             flag=self.tag.flag_on, image_size=cfg.image_size, **model_options(cfg.tag))
        if cfg.weights:
            from unifiedgender.checkpoint import load_whole_model_if_matching

            whole = load_whole_model_if_matching(model, cfg.weights)
            self.log(f"weights {cfg.weights}: " + ("the whole model (backbone and heads, same architecture)" if whole
                     else "the backbone only; the heads start from random initialisation"))
        if cfg.preprocess:  # recorded in the data config, so the checkpoint's users apply it too
            model.data_config = {**model.data_config, "preprocess": cfg.preprocess}
        if cfg.face_crop:
            from unifiedgender.crop.face import face_margin

            model.data_config = {**model.data_config, "face_crop": face_margin(model.data_config)}
        data_config = model.data_config
        apply_freezing(model, self.tag.freeze)
        self.data_config = data_config
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        self.log(f"model {cfg.arch}/{self.tag.backbone}: {trainable:,} of {total:,} parameters trainable ({self.tag.freeze})")
        self.age_weight = _pick(cfg.age_weight, model, "age_loss_weight", 1.0)
        self.find_unused = may_leave_parameters_unused(model, self.age_weight)
        self.model = self.runtime.prepare_model(model, self.find_unused)

    def _build_data(self) -> None:
        cfg, rt = self.config, self.runtime
        self.train_df, self.val_df = read_split_manifests(cfg)
        module = rt.unwrap(self.model)
        for path, df in ((cfg.train, self.train_df), (cfg.val, self.val_df)):
            other = sorted(set(df["modality"]) - set(module.modalities))
            if other:
                raise UserError(f"{path}: modality '{other[0]}' but {cfg.arch} ({self.tag.flag}) takes "
                                f"{' or '.join(module.modalities)} images only; filter the manifest or use another "
                                "architecture/F0")
        self.data = decode_splits(cfg, rt, self.data_config, self.train_df, self.val_df, self.log)
        if self.data.skipped:
            first = self.data.skipped[0]
            self.log(f"skipped {len(self.data.skipped)} unreadable image(s); reasons in skipped_images.csv "
                     f"(first: {first[0]}: {first[1]})")
        mean, std = self.data_config["mean"], self.data_config["std"]
        self.normalize = Normalize(mean, std, self.data_config["input_size"][0], rt.device, rt.memory_format)
        self.augment = DeviceAugment(self.tag.augment_preset, self.normalize, seed=cfg.seed * 1000 + rt.rank)
        self.criterion = build_criterion(
            self.tag.loss_kind, self.data.train_labels[self.data.train_ok], gamma=cfg.focal_gamma, alpha=cfg.focal_alpha,
            pos_weight=cfg.pos_weight, modality_lambda=_pick(cfg.modality_lambda, module, "modality_loss_weight", 0.3),
            age_weight=self.age_weight)

    def start_run_files(self) -> None:
        """The first files of the (now existing) run folder: train.log so far, config.yaml, skipped_images.csv."""
        if not self.runtime.is_main_process:
            return
        self.run_log.open(self.out_dir / "train.log")
        self.config.write(self.out_dir / "config.yaml")
        if self.data.skipped:
            write_skipped(self.out_dir, self.data.skipped)

    def _build_optimisation(self) -> None:
        params = list(self.runtime.unwrap(self.model).parameters())  # frozen ones get no grad and are skipped
        self.optimizer = build_optimizer(params, self.config)
        self.scheduler = build_scheduler(self.optimizer, self.config)
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
        """best.pt and the matching val_predictions.csv, from the latest validation (rank 0)."""
        if self.runtime.is_main_process:
            self.best_decision = self.validation.decision
            with atomic_path(self.out_dir / BEST) as tmp:
                torch.save(self._checkpoint({"epoch": epoch, **metrics}, decision=self.validation.decision), tmp)
            self._write_val_predictions(self.validation)
            self._emit_saved(self.out_dir / BEST, "best")

    def save_last(self, epoch: int, progress: EpochProgress | None, metrics: dict[str, float]) -> None:
        """last.pt with the full training state; `epoch` is the epoch to continue (with `progress` mid-epoch)."""
        rng = self.runtime.all_gather_object(rng_state(self.augment))
        if not self.runtime.is_main_process:
            return
        state = TrainState(
            epoch=epoch, progress=progress.state_dict() if progress else None, stopped=self.should_stop,
            optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict() if self.scheduler else None,
            scaler=self.scaler.state_dict(), callbacks=[c.state_dict() for c in self.callbacks], rng=rng,
            world_size=self.runtime.world_size)
        # mid-epoch weights have moved on from the last validation: no decision then
        decision = self.validation.decision if self.validation and not progress else None
        payload = self._checkpoint(metrics, resume=state.as_dict(), decision=decision)
        with atomic_path(self.out_dir / LAST) as tmp:
            torch.save(payload, tmp)
        self._emit_saved(self.out_dir / LAST, "last")

    def _restore(self, payload: dict[str, Any]) -> tuple[int, EpochProgress | None]:
        from unifiedgender.models.weights import load_strict

        state = TrainState.from_checkpoint(payload, self.out_dir / LAST, self.runtime.world_size)
        load_strict(self.runtime.unwrap(self.model), payload["state_dict"], str(self.out_dir / LAST))
        self._set_trainable_for_epoch(state.epoch)
        state.restore(self.optimizer, self.scheduler, self.scaler, self.callbacks, self.augment, self.runtime.rank,
                      self.config.epochs)
        self.should_stop = bool(state.stopped)
        return int(state.epoch), EpochProgress(**state.progress) if state.progress else None

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
    def _write_val_predictions(self, validation: Validation) -> None:
        probs = np.full(len(self.val_df), np.nan)
        probs[validation.result.indices] = calibrated_probs(validation.result.logits, validation.decision.temperature)
        table = predictions_table(self.val_df, probs, self.data.val_cache.status, validation.decision.threshold().value)
        with atomic_write(self.out_dir / "val_predictions.csv", newline="") as handle:
            table.to_csv(handle, index=False)

    def _validate(self, epoch: int) -> dict[str, float]:
        """Predict the validation set, fit the decision on it (self.validation) and return the val_ metrics."""
        cfg, data = self.config, self.data
        result = validate(self.model, data.val_loader, self.normalize, self.criterion, self.runtime, len(data.val_ok))
        labels = data.val_labels[result.indices]
        val = binary_metrics(labels, result.probs)
        decision = fit_decision(result.logits, labels, policy=cfg.threshold_policy, chosen_on=(
            f"validation data {cfg.val} (epoch {epoch + 1}, {len(labels)} images)"))
        self.validation = Validation(result, decision)
        return {"val_loss": result.loss, **{f"val_{k}": val[name] for k, name in HISTORY_METRICS.items()},
                "val_ece": decision.ece["uncalibrated"], "val_ece_calibrated": decision.ece["calibrated"],
                "val_temperature": decision.temperature}

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
            self.data.train_sampler.set_epoch(epoch)
            lr = self.optimizer.param_groups[0]["lr"]
            n_steps = len(self.data.train_loader)
            self.reporter.start_epoch(epoch, cfg.epochs, n_steps, progress.step if progress else 0)
            stats = train_one_epoch(self.model, self.data.train_loader, self.augment, self.criterion, self.optimizer,
                                    self.scaler, rt, progress=progress or EpochProgress(),
                                    on_step=lambda p, n, e=epoch: self._on_step(e, p, n), grad_clip=cfg.grad_clip)
            progress = None
            metrics = {**stats, **self._validate(epoch), "lr": lr}
            self.run_log.write(self.reporter.end_epoch(metrics))
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
        self.run_log.write(self.reporter.step(progress.step, n_steps, progress.loss_sum / max(progress.seen, 1),
                           progress.images * self.runtime.world_size / secs if secs > 0 else 0.0))
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


def _pick(configured: float | None, module: Any, attribute: str, default: float) -> float:
    """The configured loss weight, else the model's own (e.g. MAG's modality_loss_weight), else `default`."""
    return float(configured) if configured is not None else float(getattr(module, attribute, default))


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
            stale = check_run_dir(out, overwrite, runtime)
        trainer = Trainer(config, runtime, reporter, resume_state=state, stop_signals=stop_signals)
        if not resume:
            if stale and not overwrite:
                trainer.log(f"replacing {out}: an earlier start there never trained (no last.pt)")
            commit_run_dir(out, runtime)
        trainer.start_run_files()
        return trainer.fit()

