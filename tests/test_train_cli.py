"""The command-line phase trainer: ``--init`` starts from the given phase, ``--resume`` continues
its state; alone and under torchrun with two gloo processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from hyreslib.checkpoint import load_checkpoint
from hyreslib.hyres import HyresCodec, JpegSettings, ResidualCodec, ResidualConfig
from hyreslib.hyres.train_cli import main

TINY = ["--steps", "2", "--batch", "2", "--crop", "64", "--N", "16", "--M", "24", "--workers", "0",
        "--val-every", "0"]
ONE_STEP = ["--steps", "1", "--batch", "2", "--crop", "64", "--workers", "0", "--val-every", "0", "--device", "cpu"]


def test_init_starts_from_the_given_checkpoint(tmp_path):
    torch.manual_seed(5)
    start = HyresCodec(ResidualCodec(ResidualConfig(N=16, M=24, depth=4)), JpegSettings(quality=7))
    init, out = start.save(tmp_path / "start.ckpt"), tmp_path / "next.ckpt"
    # lr 0: the main weights cannot move, so the result holds the start's transforms exactly
    main(["--lmbda", "0.032", "--init", str(init), "--lr", "0", *ONE_STEP, "--data-root", str(tmp_path / "none"),
          "--out", str(out)])
    result = HyresCodec.load(out)
    assert result.residual.config == start.residual.config and result.jpeg == start.jpeg
    for k, v in start.residual.state_dict().items():
        if k.startswith(("g_a.", "g_s.")):
            assert torch.equal(result.residual.state_dict()[k], v), k


def test_resume_continues_the_saved_state(tmp_path, capsys):
    args = ["--lmbda", "0.045", *ONE_STEP, "--N", "16", "--M", "24", "--data-root", str(tmp_path / "none"),
            "--out", str(tmp_path / "p.ckpt"), "--resume"]
    main(args)
    first = HyresCodec.load(tmp_path / "p.ckpt")
    assert (tmp_path / "p.state").is_file() and "resumed" not in capsys.readouterr().out
    main(args)  # the state says the run is complete: nothing is trained again
    assert load_checkpoint(tmp_path / "p.ckpt")["extra"]["resumed_from"] == 1
    assert "resumed from step 1" in capsys.readouterr().out
    assert HyresCodec.load(tmp_path / "p.ckpt").fingerprint == first.fingerprint


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
