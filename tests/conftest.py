"""Shared fixtures: the ../shared data folder (skipped with a reason where absent) and tiny images."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """../shared beside the checkout, or $UGN_SHARED."""
    return Path(os.environ.get("UGN_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets in ../shared/data; tests using it skip with a clear reason when it is absent."""
    data = shared_dir() / "data"
    if not data.is_dir():
        pytest.skip(f"real data not found at {data} (clone the project beside ../shared or set UGN_SHARED)")
    return data


@pytest.fixture(scope="session")
def shared_weights() -> Path:
    """The offline ImageNet weights in ../shared/weights."""
    weights = shared_dir() / "weights"
    if not weights.is_dir():
        pytest.skip(f"offline weights not found at {weights} (clone beside ../shared or set UGN_SHARED)")
    return weights
