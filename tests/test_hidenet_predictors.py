"""Predictors: shapes on ragged grids, value ranges, sequential == teacher-forced, checkpoints,
and that training on the rate loss lowers it; plus the entropy model they feed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hyreslib.codecs import ans
from hyreslib.datasets.data import embedded
from hyreslib.hidenet import entropy
from hyreslib.hidenet.codec import predictor_fingerprint
from hyreslib.hidenet.colour import to_pixels
from hyreslib.hidenet.predictors import CNNP, FixedPredictor, UNetLikeLite, build_predictor, half_sample_cubic
from hyreslib.hidenet.split import level_pairs
from hyreslib.hidenet.training import load_predictor, rate_step, save_predictor, train_predictor
from hyreslib.training.engine import TrainConfig, TrainSetup, train


def perturbed(model: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> torch.nn.Module:
    """A learned predictor whose zero-initialised output layers are made non-zero, so tests
    exercise the network path rather than the fixed predictor it starts from."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return model.eval()


@pytest.mark.parametrize("make", [FixedPredictor, lambda: perturbed(UNetLikeLite(8, 4)),
                                  lambda: perturbed(CNNP(8, 4, shared=False))])
@pytest.mark.parametrize("h,w_even,w_odd", [(5, 7, 6), (5, 7, 7), (1, 1, 0), (1, 1, 1), (9, 2, 1), (3, 13, 12)])
def test_prediction_shapes_and_ranges(make, h, w_even, w_odd):
    pred = make()
    even = torch.randint(0, 256, (2, 3, h, w_even)).float()
    odd = torch.randint(0, 256, (2, 3, h, w_odd)).float()
    with torch.no_grad():
        mean, scale = pred(even, odd, 1)
    assert mean.shape == odd.shape and scale.shape == odd.shape
    assert ((mean >= 0) & (mean <= 255)).all()
    assert (scale >= entropy.SCALE_MIN - 1e-6).all() and (scale <= entropy.SCALE_MAX + 1e-3).all()


def test_sequential_channels_equal_teacher_forcing():
    pred = perturbed(UNetLikeLite(8, 3))
    even, odd = torch.randint(0, 256, (1, 3, 6, 9)).float(), torch.randint(0, 256, (1, 3, 6, 8)).float()
    with torch.no_grad():
        mean, scale = pred(even, odd, 2)
        ctx = pred.context(even, 2, odd.shape[-1])
        for c in range(3):
            m, s = pred.channel(ctx, c, odd[:, :c])
            assert torch.equal(m, mean[:, c:c + 1]) and torch.equal(s, scale[:, c:c + 1])


def test_untrained_learned_predictor_is_the_fixed_one():
    even, odd = torch.randint(0, 256, (1, 3, 8, 8)).float(), torch.randint(0, 256, (1, 3, 8, 8)).float()
    with torch.no_grad():
        a = CNNP(8, 2)(even, odd, 0)
        b = FixedPredictor()(even, odd, 0)
    assert torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1], rtol=1e-5)


def test_cubic_interpolation_is_exact_on_lines():
    even = torch.arange(0, 100, 10).float().view(1, 1, 1, -1)
    mid = half_sample_cubic(even)[..., 1:-2]          # away from the replicated edges
    assert torch.allclose(mid, even[..., 1:-2] + 5)


def test_level_out_of_range_is_refused():
    with pytest.raises(ValueError, match="levels"):
        UNetLikeLite(8, 2)(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), 2)


def test_checkpoint_round_trip_keeps_the_fingerprint(tmp_path):
    pred = perturbed(CNNP(8, 3, shared=False))
    path = save_predictor(tmp_path / "p.pt", pred)
    back = load_predictor(path)
    assert back.config() == pred.config()
    assert predictor_fingerprint(back) == predictor_fingerprint(pred)
    assert predictor_fingerprint(perturbed(CNNP(8, 3, shared=False), seed=1)) != predictor_fingerprint(pred)
    with pytest.raises(ValueError):
        build_predictor({"arch": "resnet"})


def test_laplace_pmf_sums_to_one_and_matches_the_coder():
    k = torch.arange(-400, 401, dtype=torch.float64)
    for s in (0.11, 0.7, 4.0, 40.0):
        for loc in (-0.5, 0.0, 0.31):
            total = entropy.laplace_log_prob(k, torch.tensor(loc).double(), torch.tensor(s).double()).exp().sum()
            assert abs(float(total) - 1) < 1e-4
    rng = np.random.default_rng(0)
    n = 20000
    x = torch.from_numpy(np.round(rng.laplace(0.2, 3.0, n)))
    loc, scale = torch.full((n,), 0.2), torch.full((n,), 3.0)
    ideal = float(entropy.laplace_bits(x, loc, scale).sum())
    idx = entropy.table_index(scale, loc).numpy()
    data = ans.encode(x.long().numpy(), idx, entropy.cdf_table())
    assert 8 * len(data) < 1.02 * ideal + 64
    assert np.array_equal(ans.decode(data, idx, entropy.cdf_table()), x.long().numpy())


def test_escape_values_round_trip():
    values = np.array([0, 5000, -5000, 255, -255, 1])
    idx = np.zeros(6, dtype=np.int64)
    assert np.array_equal(ans.decode(ans.encode(values, idx, entropy.cdf_table()), idx, entropy.cdf_table()), values)


def test_rate_loss_counts_every_odd_pixel_and_training_lowers_it():
    images = embedded("train").subset(2)
    batch = torch.stack([images[i][1][:, :48, :48] for i in range(2)])
    pixels = to_pixels(batch)
    assert sum(o.numel() for _, _, o in level_pairs(pixels, 6)) == pixels.numel() - pixels[..., ::8, ::8].numel()
    model = UNetLikeLite(8, 4)
    before = float(rate_step(4)(model, batch)["loss"].detach())
    train(model, rate_step(4), [batch], TrainConfig(steps=20, lr=1e-2, optimizer="adamw"), progress=False)
    after = float(rate_step(4)(model.eval(), batch)["loss"].detach())
    assert math.isfinite(after) and after < before - 0.01


def test_train_predictor_validates_and_logs(tmp_path):
    setup = TrainSetup(steps=2, crop=32, batch=2, workers=0)
    hist = train_predictor(CNNP(4, 3), embedded("train").subset(2), embedded("validation"), setup, val_crop=48,
                           log_csv=tmp_path / "log.csv", progress=False)
    assert hist.val_rows and {"val_psnr_l0", "val_ssim_l0", "val_bpsp_l2"} <= set(hist.val_rows[-1])
    assert (tmp_path / "log.csv").is_file()
