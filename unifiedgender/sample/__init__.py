"""The bundled sample: real hand (11K Hands) and face (LFW) images with a manifest; see ATTRIBUTION.md.

Built by scripts/make_sample.py; used by `ugn demo` and by fast tests.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def sample_dir() -> Path:
    """The folder holding manifest.csv, hands/, faces/ and ATTRIBUTION.md."""
    return Path(str(files(__name__)))


def sample_manifest_path() -> Path:
    """Path of the sample's manifest.csv (image paths in it are relative to its folder)."""
    return sample_dir() / "manifest.csv"
