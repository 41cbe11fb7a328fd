"""The training engine: skipping bad steps, schedules, validation-based selection, mixed precision
and channels-last, time-based checkpoints, resume after SIGKILL, and DDP with two gloo processes
matching one process and training the real residual codec."""

from __future__ import annotations

import copy
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from hyreslib.training.engine import TrainConfig, TrainSetup, resolve, train

JOB = Path(__file__).parent / "jobs" / "toy_training.py"
RESIDUAL_JOB = Path(__file__).parent / "jobs" / "residual_training.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _linear_problem():
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x.sum(1, keepdim=True)
    loader = torch.utils.data.DataLoader(list(zip(x, y)), batch_size=16, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    return nn.Linear(4, 1), loader, x, y


def _mse(m, b):
    return {"loss": (m(b[0]) - b[1]).pow(2).mean()}


def test_non_finite_steps_are_skipped_and_counted():
    model, loader, *_ = _linear_problem()
    calls = {"n": 0}

    def sometimes_nan(m, b):
        calls["n"] += 1
        out = _mse(m, b)
        return {"loss": out["loss"] * float("nan")} if calls["n"] % 3 == 0 else out

    hist = train(model, sometimes_nan, loader, TrainConfig(steps=20, lr=0.01), progress=False)
    assert hist.skipped_steps == calls["n"] - 20 > 0
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_repeated_failures_stop_the_run_with_a_clear_message():
    model, loader, *_ = _linear_problem()
    with pytest.raises(FloatingPointError, match="consecutive steps"):
        train(model, lambda m, b: {"loss": _mse(m, b)["loss"] * float("inf")}, loader,
              TrainConfig(steps=5, max_bad_steps=4), progress=False)


def test_plateau_schedule_is_stepped_with_the_validation_loss():
    model, loader, *_ = _linear_problem()
    cfg = TrainConfig(steps=12, lr=0.1, schedule="plateau", plateau_patience=0, plateau_factor=0.5, val_every=2,
                      log_every=1)
    hist = train(model, _mse, loader, cfg, val_fn=lambda m: {"loss": 1.0}, progress=False)  # never improves
    assert hist.rows[-1]["lr"] < 0.1 / 4


def test_best_weights_are_chosen_on_validation(tmp_path):
    model, loader, x, y = _linear_problem()
    scores, seen = iter([3.0, 1.0, 2.0, 5.0]), []

    def val_fn(m):
        seen.append(copy.deepcopy(m.state_dict()))
        return {"loss": next(scores)}

    hist = train(model, _mse, loader, TrainConfig(steps=8, val_every=2, lr=0.01), val_fn=val_fn, progress=False,
                 log_csv=tmp_path / "log.csv")
    assert hist.best_step == 4 and hist.best_val == 1.0
    for k, v in hist.best_state.items():  # the weights validated at step 4, not the last ones
        assert torch.equal(v, seen[1][k]) and not torch.equal(v, model.state_dict()[k]), k
    assert len(list(csv.DictReader(open(tmp_path / "log.csv")))) == len(hist.rows)


def test_mixed_precision_and_channels_last_reach_the_step():
    conv = nn.Conv2d(3, 4, 3)
    images = torch.utils.data.DataLoader(torch.rand(8, 3, 8, 8), batch_size=4)
    seen = []

    def step(m, x):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"),
                     x.is_contiguous(memory_format=torch.channels_last),
                     m.weight.is_contiguous(memory_format=torch.channels_last)))
        return {"loss": m(x).float().pow(2).mean()}

    train(conv, step, images, TrainConfig(steps=2, amp="bf16", channels_last=True), progress=False)
    assert seen == [(True, torch.bfloat16, True, True)] * 2
    hist = train(nn.Conv2d(3, 4, 3), step, images, TrainConfig(steps=2, amp="fp16"), progress=False)
    assert seen[-1][:3] == (True, torch.float16, False) and hist.skipped_steps == 0
    with pytest.raises(ValueError, match="amp must be"):
        train(conv, step, images, TrainConfig(steps=1, amp="fp8"), progress=False)


def test_auto_options_mean_bf16_and_channels_last_on_cuda_only():
    auto = TrainConfig(steps=1, amp="auto", channels_last="auto")
    assert (resolve(auto, torch.device("cuda")).amp, resolve(auto, torch.device("cuda")).channels_last) == ("bf16", True)
    assert (resolve(auto, torch.device("cpu")).amp, resolve(auto, torch.device("cpu")).channels_last) == ("none", False)
    fixed = TrainConfig(steps=1, amp="fp16", channels_last=True)
    assert resolve(fixed, torch.device("cpu")) == fixed
    with pytest.raises(ValueError, match="channels_last must be"):
        resolve(TrainConfig(steps=1, channels_last="yes"), torch.device("cpu"))


def test_a_model_trained_channels_last_leaves_in_the_default_layout():
    conv = nn.Conv2d(3, 4, 3)
    images = torch.utils.data.DataLoader(torch.rand(4, 3, 8, 8), batch_size=2)
    train(conv, lambda m, x: {"loss": m(x).pow(2).mean()}, images, TrainConfig(steps=1, channels_last=True),
          progress=False)
    assert conv.weight.is_contiguous()


def test_signature_ignores_where_and_how_often_but_not_what():
    base = TrainSetup(steps=10)
    assert base.signature() == {**{k: getattr(base, k) for k in ("steps", "crop", "batch", "lr", "quantizer",
                                                                 "rate_warmup", "latent_dropout", "workers",
                                                                 "val_every", "log_every", "seed")}, "device": None}
    same = TrainSetup(steps=10, device="cuda", checkpoint_every_s=5, checkpoint_every_steps=2)
    assert same.signature() == base.signature()
    assert TrainSetup(steps=10, amp="bf16").signature() == {**base.signature(), "amp": "bf16"}
    assert TrainSetup(steps=10, optimizer="adamw").signature() != base.signature()


def test_time_based_checkpoints_are_written_during_the_run(tmp_path):
    model, loader, *_ = _linear_problem()

    def crash(hist):
        if hist.rows[-1]["step"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # every step is due (0 s), no step-based checkpoints
        train(model, _mse, loader, TrainConfig(steps=10, log_every=1, checkpoint_every_s=0.0), on_log=crash,
              progress=False, checkpoint_path=tmp_path / "state.pt")
    assert torch.load(tmp_path / "state.pt", weights_only=False)["step"] == 2


def _rows(path: Path) -> list[dict]:
    return list(csv.DictReader(open(path)))


def test_resume_after_sigkill_continues_exactly(tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run([sys.executable, str(JOB), str(ref), "40", "8"], env=ENV, check=True, timeout=120)
    proc = subprocess.Popen([sys.executable, str(JOB), str(killed), "40", "8", "0.05"], env=ENV)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # kill once a checkpoint exists and steps past it are logged
            if (killed / "state.pt").exists() and (killed / "log.csv").exists():
                state_step = torch.load(killed / "state.pt", weights_only=False)["step"]
                if state_step >= 10 and len(_rows(killed / "log.csv")) > state_step + 1:
                    break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    ckpt_step = torch.load(killed / "state.pt", weights_only=False)["step"]
    assert len(_rows(killed / "log.csv")) > ckpt_step, "the kill should land after unsaved steps were logged"
    assert not (killed / "final_rank0.pt").exists()

    subprocess.run([sys.executable, str(JOB), str(killed), "40", "8"], env=ENV, check=True, timeout=120)
    resumed, reference = _rows(killed / "log.csv"), _rows(ref / "log.csv")
    assert [int(r["step"]) for r in resumed] == list(range(1, 41))  # no step lost or claimed twice
    assert [a["loss"] for a in resumed] == [b["loss"] for b in reference]  # bit-exact: noise, data, schedule
    final = torch.load(killed / "final_rank0.pt")
    assert final["resumed_from"] == ckpt_step
    for k, v in torch.load(ref / "final_rank0.pt")["model"].items():
        assert torch.equal(final["model"][k], v), k


@pytest.mark.slow
def test_ddp_two_gloo_processes_match_one_process(tmp_path, torchrun):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    subprocess.run([sys.executable, str(JOB), str(single), "15", "8"], env=ENV, check=True, timeout=120)
    subprocess.run([*torchrun, str(JOB), str(ddp), "15", "8"], env=ENV, check=True, timeout=300)
    r0, r1 = (torch.load(ddp / f"final_rank{r}.pt")["model"] for r in (0, 1))
    ref = torch.load(single / "final_rank0.pt")["model"]
    for k in ref:
        assert torch.equal(r0[k], r1[k]), f"replicas diverged at {k}"
        torch.testing.assert_close(r0[k], ref[k], rtol=1e-4, atol=1e-5)
    for a, b in zip(_rows(ddp / "log.csv"), _rows(single / "log.csv")):
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-3)


def test_interrupt_stops_at_a_step_boundary_saves_and_resumes_exactly(tmp_path):
    """Ctrl-C / the lab's interrupt button: the step in progress finishes, the state is saved there,
    a short TrainingInterrupted names the file, and running again ends where an uninterrupted run ends."""
    from hyreslib.training.interrupt import TrainingInterrupted

    cfg = TrainConfig(steps=12, lr=0.01, log_every=1, checkpoint_every_s=1e9)
    model, loader, _, _ = _linear_problem()
    reference = train(model, _mse, loader, cfg, progress=False)

    def interrupt_at_5(m, b):
        if not getattr(interrupt_at_5, "sent", False) and state["step"] == 4:
            interrupt_at_5.sent = True
            os.kill(os.getpid(), signal.SIGINT)  # lands in the middle of step 5
        state["step"] += 1
        return _mse(m, b)

    state = {"step": 0}
    model, loader, _, _ = _linear_problem()
    ckpt = tmp_path / "state.pt"
    with pytest.raises(TrainingInterrupted) as info:
        train(model, interrupt_at_5, loader, cfg, progress=False, checkpoint_path=ckpt, resume=True)
    assert info.value.step == 5 and torch.load(ckpt, weights_only=False)["step"] == 5
    assert str(ckpt) in info.value._render_traceback_()[0] and "resume" in str(info.value)
    model, loader, _, _ = _linear_problem()
    resumed = train(model, _mse, loader, cfg, progress=False, checkpoint_path=ckpt, resume=True)
    assert resumed.resumed_from == 5 and [r["step"] for r in resumed.rows] == list(range(1, 13))
    for a, b in zip(resumed.rows, reference.rows):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)


@pytest.mark.slow
def test_ddp_trains_the_real_codec_and_its_quantiles_identically_on_every_rank(tmp_path, torchrun):
    """The residual codec under DDP: quantiles outside DDP, trained by the auxiliary optimiser on each rank."""
    subprocess.run([*torchrun, str(RESIDUAL_JOB), str(tmp_path), "3"], env=ENV, check=True, timeout=300)
    r0, r1 = (torch.load(tmp_path / f"final_rank{r}.pt") for r in (0, 1))
    for k, v in r0["model"].items():
        assert torch.equal(v, r1["model"][k]), f"replicas diverged at {k}"
    quantiles = [k for k in r0["model"] if k.endswith(".quantiles")]
    assert quantiles and all(not torch.equal(r0["model"][k], r0["start"][k]) for k in quantiles)
    assert r0["rows"][-1]["aux"] < r0["rows"][0]["aux"]  # the auxiliary optimiser ran
