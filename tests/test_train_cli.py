"""The command-line schedule trainer: ``--init`` starts from the given phase, finished phases are
reused (only for the same model), ``--resume`` continues a phase's state, the training options reach
the engine and ``--parse`` the model; alone and under torchrun with two gloo processes training a
two-phase schedule."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from hyreslib.core.checkpoint import load_checkpoint
from hyreslib.hyres import HyresCodec, JpegSettings, ResidualCodec, ResidualConfig
from hyreslib.hyres.train_cli import main
from hyreslib.training import engine

TINY = ["--steps", "2", "--batch", "2", "--crop", "64", "--N", "16", "--M", "24", "--workers", "0",
        "--val-every", "0"]
ONE_STEP = ["--steps", "1", "--batch", "2", "--crop", "64", "--workers", "0", "--val-every", "0", "--device", "cpu"]


def test_init_starts_from_the_given_checkpoint(tmp_path):
    torch.manual_seed(5)
    start = HyresCodec(ResidualCodec(ResidualConfig(N=16, M=24, depth=4)), JpegSettings(quality=7))
    init = start.save(tmp_path / "start.ckpt")
    # lr 0: the main weights cannot move, so the result holds the start's transforms exactly
    main(["--lambdas", "0.032", "--init", str(init), "--lr", "0", *ONE_STEP, "--data-root", str(tmp_path / "none"),
          "--out", str(tmp_path / "run")])
    result = HyresCodec.load(tmp_path / "run" / "phase1" / "codec.ckpt")
    assert result.residual.config == start.residual.config and result.jpeg == start.jpeg
    for k, v in start.residual.state_dict().items():
        if k.startswith(("g_a.", "g_s.")):
            assert torch.equal(result.residual.state_dict()[k], v), k


def test_resume_continues_the_saved_state_and_a_finished_phase_is_reused(tmp_path, capsys):
    args = ["--lmbda", "0.045", *ONE_STEP, "--N", "16", "--M", "24", "--data-root", str(tmp_path / "none"),
            "--out", str(tmp_path / "run"), "--resume"]
    main(args)
    ckpt = tmp_path / "run" / "phase1" / "codec.ckpt"
    first = HyresCodec.load(ckpt)
    assert len(list(ckpt.parent.glob("train_state-*.pt"))) == 1 and "resumed" not in capsys.readouterr().out
    main(args)  # the same settings: the finished phase is reused
    assert "reused" in capsys.readouterr().out
    ckpt.unlink()  # as if interrupted after the last state: the state says the run is complete
    main(args)
    assert load_checkpoint(ckpt)["extra"]["resumed_from"] == 1
    assert "resumed from step 1" in capsys.readouterr().out
    assert HyresCodec.load(ckpt).fingerprint == first.fingerprint


def test_training_options_reach_the_engine(tmp_path, monkeypatch):
    seen = []
    real = engine.resolve
    monkeypatch.setattr(engine, "resolve", lambda cfg, device: seen.append(cfg) or real(cfg, device))
    main(["--lambdas", "0.045", "0.016", "--base-qualities", "30", "10", *ONE_STEP, "--N", "16", "--M", "24",
          "--first-steps", "2", "--amp", "bf16", "--channels-last", "on", "--checkpoint-every-s", "5",
          "--checkpoint-every-steps", "3", "--data-root", str(tmp_path / "none"), "--out", str(tmp_path / "run")])
    assert [(c.steps, c.amp, c.channels_last, c.checkpoint_every_s, c.checkpoint_every_steps) for c in seen] == \
        [(2, "bf16", True, 5.0, 3), (1, "bf16", True, 5.0, 3)]
    assert [HyresCodec.load(tmp_path / "run" / f"phase{k}" / "codec.ckpt").jpeg.quality for k in (1, 2)] == [30, 10]


@pytest.mark.slow
def test_two_phase_schedule_under_torchrun_then_reused_by_one_process(tmp_path, torchrun):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    empty = tmp_path / "no_data"
    empty.mkdir()
    args = ["-m", "hyreslib.hyres.train_cli", "--lambdas", "0.045", "0.032", *TINY, "--data-root", str(empty),
            "--out", str(tmp_path / "run")]
    subprocess.run([*torchrun, *args], env=env, check=True, timeout=300)
    p1, p2 = (tmp_path / "run" / f"phase{k}" / "codec.ckpt" for k in (1, 2))
    first, second = HyresCodec.load(p1), HyresCodec.load(p2)
    extra = load_checkpoint(p2)["extra"]
    assert extra["world_size"] == 2 and extra["signature"]["start"] == first.fingerprint.hex()
    assert first.residual.config == second.residual.config and first.fingerprint != second.fingerprint
    x = torch.rand(3, 64, 96)
    assert second.decode(second.encode(x)).shape == x.shape
    out = subprocess.run([sys.executable, *args], env=env, check=True, timeout=300, capture_output=True, text=True)
    assert out.stdout.count("reused") == 2  # one process recognises both phases the two ranks trained
    assert HyresCodec.load(p2).fingerprint == second.fingerprint


def test_parse_reaches_the_model_and_an_init_of_another_parse_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--lambdas", "0.045", *ONE_STEP, "--N", "16", "--M", "24", "--data-root", str(tmp_path / "none"),
            "--out", str(run)]
    main(args)
    assert HyresCodec.load(run / "phase1" / "codec.ckpt").residual.config.parse == "float"
    main([*args, "--parse", "integer"])  # the same settings otherwise: the float phase is not taken for it
    assert "reused" not in capsys.readouterr().out
    codec = HyresCodec.load(run / "phase1" / "codec.ckpt")
    assert codec.residual.config.parse == "integer"
    assert codec.encode(torch.rand(3, 64, 64))[4] == 3  # a version-3 (integer-parse) file
    with pytest.raises(SystemExit, match="integer parse, not float"):
        main(["--lambdas", "0.032", "--init", str(run / "phase1" / "codec.ckpt"), "--parse", "float", *ONE_STEP,
              "--data-root", str(tmp_path / "none"), "--out", str(tmp_path / "run2")])
