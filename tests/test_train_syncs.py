"""The training hot loop reads nothing back from the device per step (each read is a GPU->CPU sync on a GPU).

On the CPU a sync cannot be observed directly, so every host read of a tensor (`.item()`, `float()`, `int()`,
`bool()`, `.tolist()`, `.cpu()`, `.numpy()`) made by unifiedgender code is counted instead.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from unifiedgender.data.dataset import CachedBatches, make_loader
from unifiedgender.models import create_model
from unifiedgender.runtime import Runtime
from unifiedgender.training.augment import DeviceAugment, Normalize
from unifiedgender.training.loop import EpochProgress, train_one_epoch
from unifiedgender.training.losses import TrainingLoss

READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__")


@pytest.fixture
def host_reads(monkeypatch):
    """Counts host reads of tensors whose caller is a unifiedgender module (torch's own are not ours to fix)."""
    calls: list[str] = []
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _name=name, _original=original, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith("unifiedgender"):
                calls.append(f"{caller}.{_name}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    return calls


def _epoch(arch: str, preset: str, n_batches: int, read_every: int, progress: EpochProgress | None = None):
    torch.manual_seed(0)
    model = create_model(arch, "test_resnet.r160_in1k", pretrained="none")
    rng = np.random.default_rng(0)
    n = 4 * n_batches
    data = CachedBatches(rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), np.arange(n) % 2,
                         np.arange(n) % 3, np.where(np.arange(n) % 4 == 0, np.nan, 20.0 + np.arange(n)))
    loader, sampler = make_loader(data, 4, shuffle=True, seed=0, drop_last=True)
    sampler.set_epoch(0)
    rt = Runtime(torch.device("cpu"))
    normalize = Normalize((0.5,) * 3, (0.25,) * 3, 3, rt.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    progress = progress or EpochProgress()
    stats = train_one_epoch(model, loader, DeviceAugment(preset, normalize, seed=1), TrainingLoss("bce"), optimizer,
                            rt.grad_scaler(), rt, progress=progress, read_every=read_every)
    return stats, progress


@pytest.mark.parametrize("arch, preset", [("classifier", "full"), ("mag", "mixup"), ("multitask", "full")])
def test_one_read_per_read_every_steps(host_reads, arch, preset):
    _, progress = _epoch(arch, preset, n_batches=8, read_every=4)
    reads = [c for c in host_reads if c.startswith("unifiedgender.training.loop")]
    others = [c for c in host_reads if not c.startswith("unifiedgender.training.loop")]
    assert reads == ["unifiedgender.training.loop.tolist"] * 2, host_reads  # steps 4 and 8, nothing else
    assert not [c for c in others if not c.startswith("unifiedgender.runtime")], others  # losses, augmentation: none
    assert progress.step == 8 and progress.seen == 32


def test_sums_do_not_depend_on_how_often_they_are_read():
    """Reading every step (e.g. --log-every-steps 1) or every 5 steps gives bit-identical epoch figures."""
    every, _ = _epoch("mag", "mixup", n_batches=6, read_every=1)
    rarely, _ = _epoch("mag", "mixup", n_batches=6, read_every=5)
    timing = ("train_seconds", "images_per_s")
    assert {k: v for k, v in every.items() if k not in timing} == {k: v for k, v in rarely.items() if k not in timing}
    assert every["train_images"] == 24 and "train_loss_modality" in every


def test_checkpointed_progress_includes_every_step_so_far():
    progress = EpochProgress()
    progress.add(4, torch.tensor(0.5), {"gender": torch.tensor(0.5)}, torch.tensor(3))
    progress.add(2, torch.tensor(1.0), {"gender": torch.tensor(1.0)}, torch.tensor(1))
    assert progress.seen == 0 and progress.images == 6  # pending until read
    state = progress.state_dict()
    assert state["loss_sum"] == 4.0 and state["part_sums"] == {"gender": 4.0} and state["correct"] == 4 and state["seen"] == 6
    assert EpochProgress(**state).state_dict() == state
