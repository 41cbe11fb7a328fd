"""The command-line phase trainer, alone and under torchrun with two gloo processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from hyreslib.hyres import HyresCodec

TINY = ["--steps", "2", "--batch", "2", "--crop", "64", "--N", "16", "--M", "24", "--workers", "0",
        "--val-every", "0"]


@pytest.mark.slow
def test_phase_chain_single_then_two_processes(tmp_path, torchrun):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    empty = tmp_path / "no_data"
    empty.mkdir()
    p1 = tmp_path / "p1.ckpt"
    subprocess.run([sys.executable, "-m", "hyreslib.hyres.train_cli", "--lmbda", "0.045", *TINY,
                    "--data-root", str(empty), "--out", str(p1)], env=env, check=True, timeout=300)
    p2 = tmp_path / "p2.ckpt"
    subprocess.run([*torchrun, "-m", "hyreslib.hyres.train_cli", "--lmbda", "0.032",
                    "--init", str(p1), *TINY, "--data-root", str(empty), "--out", str(p2)],
                   env=env, check=True, timeout=300)
    first, second = HyresCodec.load(p1), HyresCodec.load(p2)
    assert first.residual.config == second.residual.config and first.fingerprint != second.fingerprint
    x = torch.rand(3, 64, 96)
    assert second.decode(second.encode(x)).shape == x.shape
