"""Helpers shared by the training tests (no tests here): tiny synthetic manifests and `ugn` runners."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from unifiedgender.data.manifest import write_manifest

REPO = Path(__file__).resolve().parents[1]
TINY = "test_resnet.r160_in1k"  # timm's tiny test network: fast on CPU, random init with --pretrained none


def make_split(folder: Path, name: str, n: int, size: int = 40, modalities=("hand", "face"), start: int = 0) -> Path:
    """n synthetic images (male brighter than female, so there is something to learn) and their manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start + n)
    rows = []
    for i in range(n):
        gender = ("female", "male")[i % 2]
        base = 70 if gender == "female" else 180
        pixels = np.clip(rng.normal(base, 35, (size, size + 6, 3)), 0, 255).astype(np.uint8)
        path = folder / f"{name}_{i}.png"
        Image.fromarray(pixels).save(path)
        rows.append({"path": str(path), "subject_id": f"{name}{start + i}", "gender": gender,
                     "modality": modalities[(i // 2) % len(modalities)], "age": 3 + 7 * i})
    return write_manifest(pd.DataFrame(rows), folder / f"{name}.csv", overwrite=True)


def make_manifests(folder: Path, n_train: int = 12, n_val: int = 7, **kwargs) -> tuple[Path, Path]:
    return make_split(folder, "train", n_train, **kwargs), make_split(folder, "val", n_val, start=1000, **kwargs)


def subprocess_env(tmp_path: Path) -> dict[str, str]:
    """PYTHONPATH to this checkout, one CPU thread per process (deterministic and fair on 2 shared cores)."""
    env = dict(os.environ)
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", UGN_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONUNBUFFERED="1")
    return env


def ugn_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "unifiedgender", *args]


def run_ugn(tmp_path: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(ugn_command(*args), env=subprocess_env(tmp_path), capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path)


def signal_at(cmd: list[str], tmp_path: Path, marker: str, sig: int, timeout: int = 120) -> tuple[int, str]:
    """Run `cmd`; send `sig` to it once an output line contains `marker`; return (exit code, all output)."""
    proc = subprocess.Popen(cmd, env=subprocess_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=tmp_path)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            proc.send_signal(sig)
            break
    seen += proc.stdout.readlines()
    proc.wait(timeout=timeout)
    return proc.returncode, "".join(seen)
