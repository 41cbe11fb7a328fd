"""Shared test setup: point the kit at ../shared/data when it exists (CI and developer machines),
give tests a `kodak` fixture that skips when the Kodak suite is absent, a `photo` (a crop of an
embedded test photograph), and a briefly trained HyRES codec, trained once per session."""

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
    from hyreslib.datasets import data

    try:
        return data.dataset("kodak", "test")
    except FileNotFoundError:
        pytest.skip("Kodak not present (set HYRES_DATA or run `hyres data download kodak`)")


@pytest.fixture(scope="session")
def photo() -> torch.Tensor:
    """A 200x150 crop of the first embedded test photograph (always available offline)."""
    from hyreslib.datasets import data

    return data.embedded("test")[0][1][:, :150, :200].contiguous()


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


@pytest.fixture(scope="session")
def trained_hyres(tmp_path_factory) -> Path:
    """Checkpoint of a tiny HyRES codec trained briefly on the embedded images (JPEG quality 1, λ
    0.045): enough to beat its JPEG base by a clear margin, so that quality claims can be tested."""
    from hyreslib.datasets import data
    from hyreslib.training import engine
    from hyreslib.hyres import HyresCodec, JpegSettings, ResidualCodec, ResidualConfig
    from hyreslib.hyres.train import JpegBase, finalize, make_step

    torch.manual_seed(0)
    settings = JpegSettings(quality=1)
    loader = data.crop_loader(data.embedded("train"), 64, 8, seed=0, transform=JpegBase(settings), crops_per_image=8)
    model = ResidualCodec(ResidualConfig(N=16, M=24, depth=4, scale_levels=128))
    engine.train(model, make_step(0.045), loader, engine.TrainConfig(steps=120, lr=3e-3), progress=False)
    return HyresCodec(finalize(model), settings).save(tmp_path_factory.mktemp("trained") / "hyres.ckpt")
