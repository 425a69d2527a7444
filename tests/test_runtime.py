"""Runtime: device and precision resolution, autocast, moves, torchrun environment."""

import pytest
import torch
from torch import nn

from unifiedgender.errors import UserError
from unifiedgender.runtime import dist_env, init_runtime, resolve_precision, state_digest


def test_cpu_runtime_defaults(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    rt = init_runtime(device="cpu")
    assert rt.device.type == "cpu" and rt.precision == "fp32" and rt.channels_last
    assert rt.is_main_process and not rt.distributed
    assert rt.all_gather_object(3) == [3]
    with rt.autocast():
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32
    moved = rt.to_device({"a": torch.ones(1), "b": [torch.zeros(1)]})
    assert moved["a"].device.type == "cpu" and isinstance(moved["b"], list)
    assert not rt.grad_scaler().is_enabled()


def test_bf16_autocast_on_cpu_when_asked():
    rt = init_runtime(device="cpu", precision="bf16")
    with rt.autocast():
        assert nn.Linear(4, 4)(torch.ones(2, 4)).dtype == torch.bfloat16


def test_bad_device_and_precision_refused():
    with pytest.raises(UserError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", torch.device("cpu"))
    with pytest.raises(UserError, match="unknown device 'tpu'"):
        init_runtime(device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            init_runtime(device="cuda")


def test_torchrun_environment(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert dist_env() == (3, 4, 1)


def test_state_digest_detects_a_change():
    model = nn.Linear(3, 2)
    before = state_digest(model)
    with torch.no_grad():
        model.bias[0] += 1e-6
    assert state_digest(model) != before


def test_auto_precision_ignores_emulated_bf16(monkeypatch):
    """Pre-Ampere GPUs report bf16 as supported only through emulation: auto must pick fp16 there."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert resolve_precision("auto", torch.device("cuda", 0)) == "fp16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_precision("auto", torch.device("cuda", 0)) == "bf16"


def test_prefetch_hands_out_every_batch_in_order_on_the_device():
    rt = init_runtime(device="cpu")
    batches = [{"image": torch.full((2, 1), i), "meta": [torch.tensor(i)]} for i in range(4)]
    got = list(rt.prefetch(iter(batches)))
    assert [int(b["image"][0, 0]) for b in got] == [0, 1, 2, 3] and [int(b["meta"][0]) for b in got] == [0, 1, 2, 3]
    assert all(b["image"].device == rt.device for b in got)
    assert list(rt.prefetch([])) == []
