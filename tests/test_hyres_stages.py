"""Training stages: λ phases chain and resume, refinement trains only the refiner and leaves the
bitstream unchanged."""

from __future__ import annotations

import pytest
import torch

from hyreslib import data
from hyreslib.hyres import JpegSettings, ResidualCodec, ResidualConfig
from hyreslib.hyres.stages import (Budget, load_finished, next_phase_model, phase_signature, train_refine,
                                   train_residual)

TINY = ResidualConfig(N=16, M=24, depth=4, scale_levels=64)
BUDGET = Budget(steps=3, crop=64, batch=2, lr=1e-3, workers=0, log_every=1)
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


def test_refinement_keeps_the_bitstream_and_freezes_the_codec(phase1, images):
    codec, _ = phase1
    before = {k: v.clone() for k, v in codec.residual.state_dict().items()}
    train, val = images
    refined, hist = train_refine(codec, train, val, BUDGET, perceptual=None, alpha=0.0, width=8)
    assert refined.refine is not None and len(hist.rows) == 3
    for k, v in codec.residual.state_dict().items():
        assert torch.equal(v, before[k]), f"codec weight {k} changed during refinement"
    _, x = data.embedded("test")[0]
    x = x[:, :96, :130]
    data_plain, data_refined = codec.encode(x), refined.encode(x)
    assert data_plain == data_refined  # refinement is decoder-side only: same bytes
    out_plain, out_refined = codec.decode(data_plain), refined.decode(data_refined)
    assert out_refined.shape == out_plain.shape and not torch.equal(out_plain, out_refined)
