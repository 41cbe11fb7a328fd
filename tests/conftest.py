"""Shared test setup: point the kit at ../shared/data when it exists (CI and developer machines),
and give tests a `kodak` fixture that skips when the Kodak suite is absent."""

from __future__ import annotations

import os
import socket
import sys
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


@pytest.fixture
def torchrun():
    """The command prefix of a 2-process torchrun on a free local port (gloo on CPU)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "1",
            "--master_addr", "127.0.0.1", "--master_port", str(port)]
