"""Training stages: λ phases chain and keep their best validated weights, the λ schedule reuses,
resumes and chains its phases, every stage hands every training option to the engine, refinement
trains only the refiner, on exactly what the decoder feeds it, and leaves the bitstream unchanged."""

from __future__ import annotations

import copy
from dataclasses import fields, replace

import pytest
import torch
from torch import nn

from hyreslib.core.checkpoint import load_checkpoint
from hyreslib.core.images import center_crop
from hyreslib.datasets import data
from hyreslib.hyres import HyresCodec, JpegSettings, ResidualCodec, ResidualConfig, stages
from hyreslib.hyres.stages import (load_finished, make_refine_step, make_refine_val, next_phase_model,
                                   phase_signature, train_refine, train_residual)
from hyreslib.hyres.train import JpegBase
from hyreslib.training import engine
from hyreslib.training.engine import TrainSetup

TINY = ResidualConfig(N=16, M=24, depth=4, scale_levels=64)
BUDGET = TrainSetup(steps=3, crop=64, batch=2, lr=1e-3, workers=0, log_every=1)
SETTINGS = JpegSettings(quality=5)


@pytest.fixture(scope="module")
def images():
    return data.embedded("train").subset(2), data.embedded("validation")


@pytest.fixture(scope="module")
def phase1(images):
    train, val = images
    torch.manual_seed(0)
    return train_residual(ResidualCodec(TINY), 0.045, SETTINGS, train, val, BUDGET, desc="p1")


def test_phase_trains_and_returns_a_coding_codec(phase1):
    codec, hist = phase1
    assert [r["step"] for r in hist.rows] == [1, 2, 3] and hist.best_state is not None
    x = torch.rand(3, 40, 70)
    assert codec.decode(codec.encode(x)).shape == x.shape


def test_next_phase_starts_from_the_previous_best(phase1, images):
    codec, _ = phase1
    start = next_phase_model(codec)
    for (k, a), b in zip(start.state_dict().items(), codec.residual.state_dict().values()):
        assert torch.equal(a, b.cpu()), k
    assert start.training and next(start.parameters()).requires_grad
    train, val = images
    codec2, _ = train_residual(start, 0.032, SETTINGS, train, val, BUDGET, desc="p2")
    assert codec2.fingerprint != codec.fingerprint  # trained further: a different model


def test_finished_phase_is_reused_only_with_the_same_signature(phase1, tmp_path):
    codec, _ = phase1
    sig = phase_signature(0.045, SETTINGS, BUDGET, start="scratch")
    codec.save(tmp_path / "p.ckpt", extra={"signature": sig})
    again = load_finished(tmp_path / "p.ckpt", sig, "cpu")
    assert again is not None and again.fingerprint == codec.fingerprint
    assert load_finished(tmp_path / "p.ckpt", phase_signature(0.032, SETTINGS, BUDGET, "scratch"), "cpu") is None
    assert load_finished(tmp_path / "missing.ckpt", sig, "cpu") is None


def _scripted_validation(scores: list[float], seen: list[dict]):
    """A stand-in for a stage's validation: the given losses, in order, and a copy of the weights
    each was given for."""
    scores = iter(scores)

    def make(*args, **kwargs):
        def val(model):
            seen.append(copy.deepcopy(model.state_dict()))
            return {"loss": next(scores)}
        return val

    return make


def _assert_best_kept(state: dict, seen: list[dict], best: int, prefix: str = "") -> None:
    keys = [k for k in seen[best] if k.startswith(prefix)]
    for k in keys:
        assert torch.equal(state[k].cpu(), seen[best][k]), k
    assert any(not torch.equal(seen[best][k], seen[-1][k]) for k in keys)  # the last weights differ


def test_phase_keeps_its_best_validated_weights_not_the_last(images, monkeypatch):
    seen: list[dict] = []
    monkeypatch.setattr(stages, "make_val", _scripted_validation([2.0, 1.0, 3.0], seen))
    train, val = images
    codec, hist = train_residual(ResidualCodec(TINY), 0.045, SETTINGS, train, val,
                                 replace(BUDGET, val_every=1), desc="best")
    assert hist.best_step == 2 and len(seen) == 3
    _assert_best_kept(codec.residual.state_dict(), seen, 1, prefix="g_")  # transforms (finalize moves quantiles)


def test_refinement_keeps_its_best_validated_weights_not_the_last(phase1, images, monkeypatch):
    seen: list[dict] = []
    monkeypatch.setattr(stages, "make_refine_val", _scripted_validation([2.0, 1.0, 3.0], seen))
    train, val = images
    refined, hist = train_refine(phase1[0], train, val, replace(BUDGET, val_every=1),
                                 perceptual=None, alpha=0.0, width=8)
    assert hist.best_step == 2
    _assert_best_kept(refined.refine.state_dict(), seen, 1)


def test_refinement_keeps_the_bitstream_and_leaves_the_codec_alone(phase1, images, tmp_path):
    codec, _ = phase1
    saved = HyresCodec.load(codec.save(tmp_path / "before.ckpt"))  # a snapshot, not the same object
    trainable = {k: p.requires_grad for k, p in codec.residual.named_parameters()}
    train, val = images
    refined, hist = train_refine(codec, train, val, BUDGET, perceptual=None, alpha=0.0, width=8)
    assert refined.refine is not None and len(hist.rows) == 3
    assert {k: p.requires_grad for k, p in codec.residual.named_parameters()} == trainable  # still trainable
    for k, v in saved.residual.state_dict().items():
        assert torch.equal(refined.residual.state_dict()[k].cpu(), v), f"codec weight {k} changed"
    _, x = data.embedded("test")[0]
    x = x[:, :96, :130]
    data_saved, data_refined = saved.encode(x), refined.encode(x)
    assert data_saved == data_refined and refined.fingerprint == saved.fingerprint  # decoder-side only
    out_plain, out_refined = saved.decode(data_saved), refined.decode(data_refined)
    assert out_refined.shape == out_plain.shape and not torch.equal(out_plain, out_refined)


class _Recorder(nn.Module):
    """An identity refiner that keeps what it is given."""

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return x


def _decoder_input(residual: ResidualCodec, x: torch.Tensor) -> torch.Tensor:
    """What ``HyresCodec.decode`` feeds a refiner for image ``x``."""
    recorder = _Recorder()
    codec = HyresCodec(copy.deepcopy(residual), SETTINGS, recorder)
    codec.decode(codec.encode(x))
    return recorder.seen[0]


def test_refiner_trains_and_validates_on_what_the_decoder_feeds_it():
    torch.manual_seed(0)
    residual = ResidualCodec(TINY)
    with torch.no_grad():  # a large residual, so that base + r_hat leaves [0, 1]
        residual.g_a[-2].weight.mul_(30.0)
    val_images = data.embedded("validation")
    x = center_crop(val_images[0][1], stages.VAL_CROP)
    decoded = _decoder_input(residual, x)
    assert float(decoded.min()) < 0 or float(decoded.max()) > 1  # a clamp would show

    recorder = _Recorder()
    crop = x[:, :64, :64]
    step = make_refine_step(copy.deepcopy(residual), perceptual=None, alpha=0.0)
    step(recorder, tuple(t[None] for t in JpegBase(SETTINGS)(crop)))
    torch.testing.assert_close(recorder.seen[0], _decoder_input(residual, crop), rtol=0, atol=1e-5)

    recorder = _Recorder()
    make_refine_val(copy.deepcopy(residual), val_images, SETTINGS, "cpu")(recorder)
    torch.testing.assert_close(recorder.seen[0], decoded, rtol=0, atol=1e-5)


# --- one training configuration: every engine option reaches the engine -------------------------
OPTIONS = dict(amp="bf16", channels_last=True, checkpoint_every_s=123.0, checkpoint_every_steps=7)


def _engine_configs(monkeypatch) -> list:
    """The configurations the engine is given (through :func:`engine.resolve`, which every run calls)."""
    seen = []
    real = engine.resolve

    def spy(cfg, device):
        seen.append(cfg)
        return real(cfg, device)

    monkeypatch.setattr(engine, "resolve", spy)
    return seen


def test_every_stage_hands_every_option_to_the_engine(phase1, images, monkeypatch):
    """AMP, channels_last and the checkpoint interval (and every other engine field) reach the engine
    unchanged from each stage; with bf16 and channels_last the real models train on a CPU."""
    from hyreslib.hidenet.predictors import CNNP
    from hyreslib.hidenet.training import train_predictor

    seen = _engine_configs(monkeypatch)
    setup = replace(BUDGET, steps=1, **OPTIONS)
    train, val = images
    train_residual(ResidualCodec(TINY), 0.045, SETTINGS, train, val, setup, desc="amp")
    stages.train_reference(0.045, 8, 8, train, val, setup)
    train_refine(phase1[0], train, val, setup, perceptual=None, alpha=0.0, width=8)
    train_predictor(CNNP(4, 3), train, val, replace(setup, crop=32), val_crop=48, progress=False)
    engine_fields = [f.name for f in fields(engine.TrainConfig)]
    assert len(seen) == 4
    for cfg in seen:
        assert {k: getattr(cfg, k) for k in engine_fields} == {k: getattr(setup, k) for k in engine_fields}


# --- the λ schedule ----------------------------------------------------------------------------
def _schedule(images, out, **kw):
    train, val = images
    reported = []
    kw = {"first_setup": replace(BUDGET, steps=4), "on_phase": reported.append, **kw}
    done = stages.run_schedule([0.045, 0.016], [SETTINGS, replace(SETTINGS, quality=20)], train, val, BUDGET, out,
                               lambda: ResidualCodec(TINY), **kw)
    return done, reported


def test_schedule_chains_phases_reuses_finished_ones_and_retrains_what_changed(images, tmp_path):
    done, reported = _schedule(images, tmp_path)
    assert [p.index for p in done] == [1, 2] and reported == done
    assert [len(p.history.rows) for p in done] == [4, 3]  # phase 1 from scratch with first_setup
    assert [p.codec.jpeg.quality for p in done] == [5, 20]  # per-phase base quality
    signatures = [load_checkpoint(tmp_path / f"phase{k}" / "codec.ckpt")["extra"]["signature"] for k in (1, 2)]
    assert signatures[0]["start"] == "scratch" and signatures[1]["start"] == done[0].codec.fingerprint.hex()
    assert signatures[1]["lmbda"] == 0.016 and signatures[1]["budget"]["steps"] == 3

    again, _ = _schedule(images, tmp_path)  # same settings: nothing is trained
    assert all(p.history is None and p.origin.startswith("reused") for p in again)
    assert [p.codec.fingerprint for p in again] == [p.codec.fingerprint for p in done]

    changed, _ = _schedule(images, tmp_path, first_setup=replace(BUDGET, steps=4, lr=2e-3))
    assert all(p.history is not None for p in changed)  # phase 1 changed, so phase 2 starts elsewhere
    assert changed[1].codec.fingerprint != done[1].codec.fingerprint


def test_schedule_starts_from_a_given_first_phase_and_resumes_an_interrupted_one(images, phase1, tmp_path):
    given = stages.Phase(1, 0.045, phase1[0], tmp_path / "given.ckpt", "given")
    done, reported = _schedule(images, tmp_path, first=given)
    assert done[0] is given and reported == done and done[1].history is not None
    sig = load_checkpoint(tmp_path / "phase2" / "codec.ckpt")["extra"]["signature"]
    assert sig["start"] == phase1[0].fingerprint.hex()
    (tmp_path / "phase2" / "codec.ckpt").unlink()  # as if interrupted after the last training state
    assert len(list((tmp_path / "phase2").glob("train_state-*.pt"))) == 1
    resumed, _ = _schedule(images, tmp_path, first=given)
    assert resumed[1].history.resumed_from == 3 and "resumed from step 3" in resumed[1].origin
    assert resumed[1].codec.fingerprint == done[1].codec.fingerprint
    with pytest.raises(ValueError, match="base settings"):
        stages.run_schedule([0.045], [], *images, BUDGET, tmp_path, lambda: ResidualCodec(TINY))
