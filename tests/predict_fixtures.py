"""Helpers shared by the inference tests: tiny real checkpoints and tiny images written to disk."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unifiedgender.checkpoint import save_checkpoint
from unifiedgender.models import create_model

BACKBONE = "mobilenetv2_050"  # mobilenetv3_* fails in umcc on the models branch (feature size mismatch)
SIZE = 48


def make_checkpoint(path: Path, arch: str = "umcc", flag: bool = False, seed: int = 0) -> Path:
    """A randomly initialised timm model at 48 px whose male logits spread around 0 (heads rescaled)."""
    torch.manual_seed(seed)
    model = create_model(arch, BACKBONE, pretrained="none", flag=flag).eval()
    model.data_config = {"input_size": (3, SIZE, SIZE), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25),
                         "interpolation": "bilinear", "crop_pct": 0.875}
    heads = [m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and m.out_features == 1]
    probe = torch.rand(16, 3, SIZE, SIZE) * 4 - 2
    with torch.no_grad():
        features = model.backbone(probe)
        for head in heads:
            inputs = features if head.in_features == features.shape[1] else torch.cat([features, torch.zeros(16, 2)], 1)
            logits = head(inputs).squeeze(1)
            head.weight.mul_(2.0 / (logits.std() + 1e-6))
            head.bias.sub_(head(inputs).mean())
    tag = f"{BACKBONE}.none_F{int(flag)}_An_Lb_Z0"
    return save_checkpoint(path, model, tag=tag)


def write_images(folder: Path, n: int, size: tuple[int, int] = (64, 56), seed: int = 0, ext: str = ".jpg") -> list[Path]:
    """`n` random-content RGB images (smooth gradients plus noise, so the model output varies)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        base = np.linspace(0, 255, size[0])[None, :, None] * rng.random(3)[None, None, :]
        noise = rng.integers(0, 120, (size[1], size[0], 3))
        array = np.clip(base + noise, 0, 255).astype(np.uint8)
        path = folder / f"img{i:03d}{ext}"
        Image.fromarray(array).save(path)
        paths.append(path)
    return paths


def run_ugn(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run `ugn ARGS` in-process through the real entry point; returns (exit code, stdout + stderr)."""
    from unifiedgender.cli.app import main

    old = sys.argv
    sys.argv = ["ugn", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread in these tests: with `pytest -n 2` on 2 cores, OpenMP threads that outnumber the
    cores spin against each other and a tiny forward pass can take 30x longer."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
