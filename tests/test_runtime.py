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


def test_unwrap_reaches_the_module_under_compile_and_ddp_in_either_order(tmp_path):
    from unifiedgender.runtime import Runtime

    model = nn.Linear(3, 1)
    assert Runtime.unwrap(model) is model
    assert Runtime.unwrap(torch.compile(model)) is model  # compiling builds nothing until called
    if torch.distributed.is_initialized():
        pytest.skip("a process group is already set up in this process")
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ddp = nn.parallel.DistributedDataParallel(model)
        assert Runtime.unwrap(torch.compile(ddp)) is model
        assert Runtime.unwrap(nn.parallel.DistributedDataParallel(torch.compile(model))) is model
    finally:
        torch.distributed.destroy_process_group()


def test_a_compiled_model_is_saved_with_its_plain_keys(tmp_path):
    from unifiedgender.checkpoint import checkpoint_payload
    from unifiedgender.models import create_model

    model = create_model("simple_cnn", pretrained="none", image_size=32)
    payload = checkpoint_payload(torch.compile(model))
    assert set(payload["state_dict"]) == set(model.state_dict())


def test_inference_runtime_autocasts_on_cuda_only():
    from unifiedgender.inference.backends import TorchBackend
    from unifiedgender.runtime import inference_runtime

    rt = inference_runtime("cpu")
    assert rt.precision == "fp32" and rt.channels_last and rt.autocast_dtype is None
    assert TorchBackend(nn.Linear(2, 1), "cpu").runtime.precision == "fp32"
    if torch.cuda.is_available():
        gpu = inference_runtime("cuda")
        assert gpu.precision == resolve_precision("auto", gpu.device) in ("bf16", "fp16")


def test_only_runtime_decides_precision():
    """Autocast dtypes and bf16 support are decided in unifiedgender/runtime.py alone; others ask a Runtime."""
    import re
    from pathlib import Path

    import unifiedgender

    package = Path(unifiedgender.__file__).parent
    pattern = re.compile(r"torch\.autocast\(|is_bf16_supported|torch\.(bfloat16|float16)\b|GradScaler\(")
    offenders = [f"{path.relative_to(package)}:{number}" for path in sorted(package.rglob("*.py"))
                 if path.name != "runtime.py" or path.parent != package
                 for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not offenders, offenders
