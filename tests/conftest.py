"""Shared test setup: point the kit at ../shared/data when it exists (CI and developer machines),
and give tests a `kodak` fixture that skips when the Kodak suite is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "HYRES_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["HYRES_DATA"] = str(SHARED_DATA)

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def kodak():
    """The Kodak test set (24 images), or a skip when it is not on this machine."""
    from hyreslib import data

    try:
        return data.dataset("kodak", "test")
    except FileNotFoundError:
        pytest.skip("Kodak not present (set HYRES_DATA or run `hyres data download kodak`)")


@pytest.fixture
def cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    return torch.device("cuda")
