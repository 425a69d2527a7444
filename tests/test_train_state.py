"""The trainer's parts: resumable state, run folder IO, optimiser factory, explicit plotting, the reporter left alone."""

from __future__ import annotations

import io

import matplotlib
import pytest
import torch

from test_train_support import make_manifests
from unifiedgender.errors import UserError
from unifiedgender.runtime import Runtime
from unifiedgender.training.config import OPTIMIZERS, resolve_config
from unifiedgender.training.optim import build_optimizer, build_scheduler
from unifiedgender.training.rundir import RunLog, load_resume_state
from unifiedgender.training.state import TRAIN_STATE_FORMAT, TrainState


def _state(world_size=1) -> TrainState:
    return TrainState(epoch=2, progress=None, stopped=False, optimizer={}, scheduler=None, scaler={}, callbacks=[],
                      rng=[{}], world_size=world_size)


def test_train_state_round_trip_and_refusals(tmp_path):
    payload = {"resume": _state().as_dict()}
    assert payload["resume"]["format"] == TRAIN_STATE_FORMAT
    assert TrainState.from_checkpoint(payload, tmp_path / "last.pt", 1) == _state()
    with pytest.raises(UserError, match="written by 1 process"):
        TrainState.from_checkpoint(payload, tmp_path / "last.pt", 2)
    with pytest.raises(UserError, match="not a ugn training state"):
        TrainState.from_checkpoint({"resume": None}, tmp_path / "last.pt", 1)


def test_last_pt_is_read_through_the_safe_loader(tmp_path):
    """A last.pt holding pickled Python objects is refused, not executed."""
    with pytest.raises(UserError, match="nothing to resume"):
        load_resume_state(tmp_path)
    torch.save({"format": "ugn", "obj": io.StringIO("x")}, tmp_path / "last.pt")
    with pytest.raises(UserError, match="refused to load"):
        load_resume_state(tmp_path)


def test_run_log_keeps_lines_until_the_folder_exists(tmp_path):
    log = RunLog()
    log.write("first")
    log.write(None)  # a disabled reporter logs nothing
    log.open(tmp_path / "train.log")
    log.write("second")
    assert (tmp_path / "train.log").read_text().splitlines() == ["first", "second"]


def test_main_process_answers_every_rank():
    rt = Runtime(torch.device("cpu"))
    assert rt.on_main_process(lambda: 3) == 3

    def refuse():
        raise UserError("no")

    with pytest.raises(UserError, match="no"):
        rt.on_main_process(refuse)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_name_builds_its_class(name):
    cfg = resolve_config(None, {"tag": "simple_cnn_F0_An_Lb_Z0", "arch": "simple_cnn", "train": "t.csv", "val": "v.csv",
                                "optimizer": name, "lr": 0.5})
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], cfg)
    assert type(opt).__name__ == OPTIMIZERS[name] and opt.param_groups[0]["lr"] == 0.5
    assert isinstance(build_scheduler(opt, cfg), torch.optim.lr_scheduler.CosineAnnealingLR)


def test_curve_plot_leaves_the_global_backend_alone(tmp_path):
    from unifiedgender.training.callbacks import plot_history

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        plot_history([{"epoch": 1, "train_loss": 0.7, "val_loss": 0.6, "val_acc": 0.5, "lr": 1e-4}], tmp_path / "curves.png")
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_trainer_leaves_the_reporter_it_is_given_alone(tmp_path):
    from unifiedgender.training.progress import Reporter
    from unifiedgender.training.trainer import run_training

    train, val = make_manifests(tmp_path / "data", n_train=8, n_val=4)
    cfg = resolve_config(None, {"tag": "simple_cnn_F0_An_Lb_Z0_seed3", "arch": "simple_cnn", "train": str(train),
                                "val": str(val), "out": str(tmp_path / "run"), "epochs": 1, "batch_size": 4,
                                "image_size": 16, "workers": 0, "cache": "memory", "early_stop_patience": 0})
    reporter = Reporter(stream=io.StringIO(), tty=False)
    settings = ("enabled", "stream", "tty", "log_every_steps")
    before = {k: getattr(reporter, k) for k in settings}, set(vars(reporter))
    run_training(cfg, Runtime(torch.device("cpu")), reporter=reporter)
    assert ({k: getattr(reporter, k) for k in settings}, set(vars(reporter))) == before  # no file attached to it
    logged = reporter.stream.getvalue().splitlines()
    assert (tmp_path / "run" / "train.log").read_text().splitlines() == logged  # every printed line, in order
    assert "seed: 3" in (tmp_path / "run" / "config.yaml").read_text()  # the tag's seed, resolved before training
