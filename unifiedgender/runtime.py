"""Device, precision and distributed execution: the only module that knows about CUDA, MPS and DDP.

`init_runtime()` reads the torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK), picks the device and the
autocast dtype, and returns a small `Runtime` object; the training loop moves tensors and models only
through it, so the same loop runs on a laptop CPU, one GPU, or many GPUs on several nodes.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from unifiedgender.errors import UserError

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
CPU_WORK_TIMEOUT = datetime.timedelta(hours=12)  # ranks waiting for each other's CPU work (decoding a data set)
DEVICES = ("auto", "cpu", "cuda", "mps")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """auto (or None) -> CUDA (this process's local GPU), else MPS, else CPU. An unavailable device is a UserError."""
    name = "auto" if name is None else str(name)
    if name not in DEVICES and not name.startswith("cuda:"):
        raise UserError(f"unknown device '{name}'; use one of {', '.join(DEVICES)}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device '{name}' requested but CUDA is not available; use --device cpu or auto")
        return torch.device(name) if ":" in name else torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("device 'mps' requested but MPS is not available; use --device cpu or auto")
    return torch.device(name)


def cuda_half_precision() -> str:
    """bf16 on GPUs with native bf16 (Ampere and newer), else fp16: pre-Ampere GPUs only emulate bf16, slowly."""
    return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"


def resolve_precision(precision: str, device: torch.device) -> str:
    """auto -> bf16 on CUDA GPUs with native bf16 (else fp16), fp16 on MPS, fp32 on CPU."""
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision '{precision}'; use one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return cuda_half_precision()
    if device.type == "mps":
        return "fp16"
    return "fp32"


def full_precision(device_type: str) -> contextlib.AbstractContextManager:
    """Autocast off inside a model, for computations that need float32 whatever the run's precision
    (e.g. a power spectrum); the caller casts its inputs to float32."""
    return torch.autocast(device_type=device_type, enabled=False)


@dataclass
class Runtime:
    """Where and how the model runs: device, autocast dtype, memory format, compile and DDP membership."""

    device: torch.device
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    cpu_group: Any = None  # a gloo group with a long timeout, for waiting on CPU work (see cpu_barrier)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main_process(self) -> bool:
        return self.rank == 0

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return AUTOCAST_DTYPES.get(self.precision)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed-precision context for forward passes (a no-op in fp32)."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A loss scaler, enabled only for fp16 (bf16 and fp32 need none)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def to_device(self, obj: Any) -> Any:
        """Move a tensor, or the tensors in a dict/list/tuple, to the device (non-blocking from pinned memory)."""
        if isinstance(obj, torch.Tensor):
            return obj.to(self.device, non_blocking=True)
        if isinstance(obj, dict):
            return {k: self.to_device(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.to_device(v) for v in obj)
        return obj

    def prefetch(self, batches: Iterable[Any]) -> Iterator[Any]:
        """`batches` moved to the device one batch ahead. On CUDA the copy (from pinned memory) runs on a side
        stream, so batch i+1 crosses the bus while step i computes; elsewhere it is `to_device` in order."""
        if self.device.type != "cuda":
            for batch in batches:
                yield self.to_device(batch)
            return
        side, compute = torch.cuda.Stream(self.device), torch.cuda.current_stream(self.device)
        pending = None
        for batch in batches:
            with torch.cuda.stream(side):
                moved = self.to_device(batch)
                copied = torch.cuda.Event()
                copied.record(side)
            if pending is not None:
                yield _ready(*pending, compute)
            pending = moved, copied
        if pending is not None:
            yield _ready(*pending, compute)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    @property
    def pin_memory(self) -> bool:
        return self.device.type == "cuda"

    def prepare_model(self, model: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
        """Move to the device (channels_last where asked) and wrap for DDP; compile last if asked."""
        model = model.to(self.device, memory_format=self.memory_format)
        return self.wrap(model, find_unused_parameters)

    def wrap(self, model: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
        """DDP-wrap (when distributed) and optionally torch.compile an already-placed model.

        find_unused_parameters: some parameters may get no gradient in a step (MAG's hard gating, a loss term
        weighted 0); DDP then searches the graph each step instead of waiting for their gradients forever.
        """
        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused_parameters)
        if self.compile:
            model = torch.compile(model)
        return model

    @staticmethod
    def unwrap(model: nn.Module) -> nn.Module:
        """The plain module under torch.compile and DistributedDataParallel wrappers, in any order and depth."""
        while True:
            if isinstance(model, nn.parallel.DistributedDataParallel):
                model = model.module
            elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile's OptimizedModule
                model = model._orig_mod
            else:
                return model

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order (just [obj] when not distributed)."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def any_rank(self, flag: bool) -> bool:
        """True on every rank when `flag` is True on any rank (one small all-reduce over the CPU group, so no
        device sync; no collective when alone)."""
        if not self.distributed:
            return flag
        on_cpu = self.cpu_group is not None
        value = torch.tensor([1 if flag else 0], device="cpu" if on_cpu else self.device)
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX, group=self.cpu_group)
        return bool(value.item())

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def on_main_process(self, work: Callable[[], Any]) -> Any:
        """Rank 0 runs `work` (the other ranks do not); every rank returns its result, or raises the UserError it
        raised, so a refusal stops every rank instead of leaving the others waiting."""
        outcome: tuple[Any, str | None] = (None, None)
        if self.is_main_process:
            try:
                outcome = (work(), None)
            except UserError as exc:
                outcome = (None, str(exc))
        result, problem = self.broadcast_object(outcome)
        if problem is not None:
            raise UserError(problem)
        return result

    def cpu_barrier(self) -> None:
        """Wait for every rank over the CPU group: long CPU work (decoding a data set) cannot hit the GPU
        collectives' timeout."""
        if self.distributed:
            torch.distributed.barrier(group=self.cpu_group)

    def cpu_broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank, over the CPU group."""
        if not self.distributed:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0, group=self.cpu_group)
        return box[0]

    def cpu_gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj` in rank order, over the CPU group."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj, group=self.cpu_group)
        return out

    def replicas_in_sync(self, model: nn.Module) -> bool:
        """True when every rank holds bit-identical weights (compared by a digest of the state dict)."""
        return len(set(self.all_gather_object(state_digest(self.unwrap(model))))) == 1

    def shutdown(self) -> None:
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    def describe(self) -> str:
        text = f"device={self.device} precision={self.precision} channels_last={self.channels_last}"
        if self.compile:
            text += " compile=on"
        if self.distributed:
            text += f" rank={self.rank}/{self.world_size}"
        return text


def _ready(batch: Any, copied: Any, compute: Any) -> Any:
    """Make the compute stream wait for a side-stream copy and own its tensors' memory from then on."""
    compute.wait_event(copied)
    for tensor in _tensors(batch):
        tensor.record_stream(compute)
    return batch


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _tensors(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _tensors(value)


def state_digest(model: nn.Module) -> str:
    """A SHA-256 over the model's state dict (names and raw bytes), for comparing replicas."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def dist_env() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment variables; (0, 1, 0) outside torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return rank, world, local


def init_runtime(
    device: str = "auto",
    precision: str = "auto",
    channels_last: bool | None = None,
    compile: bool = False,
    timeout_minutes: int = 30,
) -> Runtime:
    """Build the Runtime; under torchrun, join the process group (NCCL on CUDA, gloo otherwise)."""
    rank, world, local = dist_env()
    dev = resolve_device(device, local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    prec = resolve_precision(precision, dev)
    if prec != "fp32" and dev.type == "cpu" and precision == "fp16":
        raise UserError("--precision fp16 is not supported on CPU; use bf16 or fp32")
    cpu_group = None
    if world > 1:
        if not torch.distributed.is_initialized():
            backend = "nccl" if dev.type == "cuda" else "gloo"
            torch.distributed.init_process_group(
                backend=backend, timeout=datetime.timedelta(minutes=timeout_minutes),
                **({"device_id": dev} if backend == "nccl" else {}),
            )
        cpu_group = torch.distributed.new_group(backend="gloo", timeout=CPU_WORK_TIMEOUT)
    if channels_last is None:  # faster for convolutions on GPUs and on CPUs (oneDNN): 1.5-2x measured on CPU
        channels_last = dev.type in ("cuda", "cpu")
    return Runtime(dev, prec, channels_last, compile, rank, world, local, cpu_group)


def inference_runtime(device: str | torch.device | None = "auto") -> Runtime:
    """The Runtime for prediction in one process: channels_last, and autocast on CUDA only (bf16 on GPUs with native
    bf16, else fp16, as `resolve_precision`); fp32 on CPU and MPS."""
    dev = resolve_device(device)
    return Runtime(dev, resolve_precision("auto", dev) if dev.type == "cuda" else "fp32", channels_last=True)


@contextlib.contextmanager
def runtime_session(**kwargs: Any) -> Iterator[Runtime]:
    """init_runtime(...) that always leaves the process group on exit."""
    rt = init_runtime(**kwargs)
    try:
        yield rt
    finally:
        rt.shutdown()
