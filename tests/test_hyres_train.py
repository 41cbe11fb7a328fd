"""Training pieces: the DataLoader transform, the rate-distortion terms, validation, finalize."""

from __future__ import annotations

import pytest
import torch

from hyreslib.datasets import data
from hyreslib.hyres import JpegSettings, ResidualCodec, ResidualConfig
from hyreslib.hyres.train import JpegBase, finalize, make_step, make_val, rd_terms
from hyreslib.training import engine

CFG = ResidualConfig(N=16, M=24, depth=4, scale_levels=64)


def test_jpeg_base_transform():
    crop = data.embedded("train")[0][1][:, :64, :64].contiguous()
    x, base, bpp, _ = JpegBase(JpegSettings(quality=5))(crop)
    assert torch.equal(x, crop) and base.shape == crop.shape
    assert 0 < float(bpp) < 24 and not torch.equal(base, crop)


def test_rd_terms_add_up():
    torch.manual_seed(0)
    model = ResidualCodec(CFG).eval()
    x = torch.rand(2, 3, 64, 64)
    base = (x * 4).round() / 4
    t = rd_terms(model, x, base, lmbda=0.01, quality=5)
    assert torch.allclose(t["loss"], 0.01 * 255 ** 2 * t["mse"] + t["bpp_y"] + t["bpp_z"])
    assert t["bpp_y"] > 0 and t["bpp_z"] > 0
    assert float(t["psnr"]) == pytest.approx(-10 * torch.log10(t["mse"]).item())


def test_short_training_lowers_the_loss_and_yields_a_coder():
    torch.manual_seed(0)
    images = data.embedded("train").subset(2)
    loader = data.crop_loader(images, 64, 4, seed=0, transform=JpegBase(JpegSettings(quality=1)), crops_per_image=2)
    val_fn = make_val(data.embedded("validation"), 0.045, 64, JpegSettings(quality=1))
    model = ResidualCodec(CFG)
    before = val_fn(model.eval())["loss"]
    cfg = engine.TrainConfig(steps=25, lr=3e-3, log_every=5)
    hist = engine.train(model, make_step(0.045, rate_warmup=5), loader, cfg, val_fn=val_fn, progress=False)
    assert {"loss", "bpp_y", "bpp_z", "bpp_jpeg", "psnr", "aux"} <= set(hist.rows[-1])
    assert hist.best_val < before
    model.load_state_dict(hist.best_state)
    finalize(model)
    out = model.compress(torch.zeros(1, 3, 64, 64))
    assert set(out["strings"]) == {"z", "y_anchor", "y_non_anchor"}


def test_rate_warmup_ramps_the_rate_weight():
    torch.manual_seed(0)
    model = ResidualCodec(CFG).eval()
    x = torch.rand(2, 3, 64, 64)
    batch = (x, (x * 4).round() / 4, torch.tensor([0.5, 0.5]), torch.tensor([1.0, 1.0]))
    step = make_step(0.045, rate_warmup=4)
    outs = [step(model, batch) for _ in range(6)]
    for i, out in enumerate(outs):
        weight = min(1.0, i / 4)
        rate = out["bpp_y"] + out["bpp_z"]
        assert torch.allclose(out["loss"], out["rd_loss"] - (1 - weight) * rate)
    assert torch.allclose(outs[0]["loss"], 0.045 * 255 ** 2 * outs[0]["mse"])
    assert outs[0]["bpp_jpeg"] == pytest.approx(0.5)


def _real_codec_run(state_path, crash_after: int | None = None, init_seed: int = 0):
    """6 steps of the real residual codec (STE: noisy likelihoods) with a rate warm-up over all of
    them, checkpointed every 2 steps; ``crash_after``: an exception once that step is logged."""
    torch.manual_seed(init_seed)
    model = ResidualCodec(CFG)
    loader = data.crop_loader(data.embedded("train").subset(2), 64, 2, seed=0,
                              transform=JpegBase(JpegSettings(quality=1)))

    def on_log(hist):
        if hist.rows[-1]["step"] == crash_after:
            raise KeyboardInterrupt

    cfg = engine.TrainConfig(steps=6, lr=3e-3, log_every=1, checkpoint_every_steps=2)
    hist = engine.train(model, make_step(0.045, rate_warmup=6), loader, cfg, on_log=on_log, progress=False,
                        checkpoint_path=state_path, resume=True)
    return model, hist


def test_real_codec_resumes_bit_exactly(tmp_path):
    """Noise, data order, warm-up, optimisers (main and aux) and schedule all continue exactly."""
    reference, ref_hist = _real_codec_run(tmp_path / "ref.state")
    with pytest.raises(KeyboardInterrupt):
        _real_codec_run(tmp_path / "run.state", crash_after=3)
    resumed, hist = _real_codec_run(tmp_path / "run.state", init_seed=1)  # another process: other RNG, weights
    assert hist.resumed_from == 2
    assert [r["loss"] for r in hist.rows] == [r["loss"] for r in ref_hist.rows]
    assert [r["aux"] for r in hist.rows] == [r["aux"] for r in ref_hist.rows]
    for k, v in reference.state_dict().items():
        assert torch.equal(resumed.state_dict()[k], v), k
